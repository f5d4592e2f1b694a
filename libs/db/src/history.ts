/**
 * `builds.history` (migration 6): each state change of a job appended by the statement that makes
 * it. Keys are fixed by the caller's code, values are bound parameters.
 */
export type HistoryEntry = Readonly<Record<string, string | number | null>>;

/** A `SET` fragment appending `entry` to the history array, and its parameters. */
export function appendHistory(entry: HistoryEntry): { sql: string; params: (string | number | null)[] } {
  const entries = Object.entries(entry);
  for (const [key] of entries) if (!/^[a-zA-Z]+$/.test(key)) throw new Error(`bad history key ${key}`);
  return {
    sql: `history = JSON_ARRAY_APPEND(COALESCE(history, '[]'), '$', JSON_OBJECT(${entries.map(([k]) => `'${k}', ?`).join(', ')}))`,
    params: entries.map(([, value]) => value),
  };
}
