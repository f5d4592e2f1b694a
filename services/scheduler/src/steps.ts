/** Steps run side by side, as a takeover runs its independent reads. */

/**
 * How long `step` took, into `took[what]`, whether it succeeded or not. A failure names its step
 * and how long it ran ("workersMs failed after 5002 ms: timeout"), the library's error as its
 * cause: a bare "timeout" did not tell an operator which read of a takeover JetStream left
 * unanswered.
 */
export async function timed<T>(took: Record<string, number>, what: string, step: () => Promise<T>): Promise<T> {
  const began = Date.now();
  try {
    return await step();
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new Error(`${what} failed after ${Date.now() - began} ms: ${why}`, { cause: err });
  } finally {
    took[what] = Date.now() - began;
  }
}

/**
 * Like Promise.all, but settles only once every step has: a step still running when another
 * failed would add its links after the failed takeover was torn down, and leak them.
 */
export async function allSettledOrFirstError<T extends readonly unknown[]>(steps: {
  [K in keyof T]: Promise<T[K]>;
}): Promise<T> {
  const results = await Promise.allSettled(steps);
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
  return results.map((r) => (r as PromiseFulfilledResult<unknown>).value) as unknown as T;
}
