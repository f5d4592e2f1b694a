/** Steps run side by side, as a takeover runs its independent reads. */

/** How long `step` took, into `took[what]`, whether it succeeded or not. */
export async function timed<T>(took: Record<string, number>, what: string, step: () => Promise<T>): Promise<T> {
  const began = Date.now();
  try {
    return await step();
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
