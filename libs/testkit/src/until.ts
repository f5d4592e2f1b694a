/**
 * The one way tests wait for something to become true: poll `check` until it returns a value
 * other than undefined, null or false (that value is returned), and fail naming `what` at the
 * deadline. A check that throws fails the wait at once; wrap it where an error means "not yet".
 */
export async function until<T>(
  what: string,
  check: () => T | undefined | null | false | Promise<T | undefined | null | false>,
  timeoutMs = 15_000,
  everyMs = 20,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== null && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}

/**
 * When `check` first holds (Date.now()), for fault tests that print how long recovery took. A
 * check that throws counts as not yet: the hub it asks may be down.
 */
export async function whenTrue(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs = 15_000,
  everyMs = 100,
): Promise<number> {
  const holds = async () => {
    try {
      return await check();
    } catch {
      return false;
    }
  };
  return until(what, async () => (await holds()) && Date.now(), timeoutMs, everyMs);
}
