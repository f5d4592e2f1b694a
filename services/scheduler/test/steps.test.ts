// Steps run side by side: the first failure is reported only once every step has settled (a
// takeover's step still running must not add links after the failed takeover was torn down).
import { describe, expect, it } from 'vitest';
import { allSettledOrFirstError, timed } from '../src/steps.js';

const after = <T>(ms: number, value: T, fail = false) =>
  new Promise<T>((resolve, reject) => setTimeout(() => (fail ? reject(new Error(String(value))) : resolve(value)), ms));

describe('allSettledOrFirstError', () => {
  it('gives every value, in order', async () => {
    await expect(allSettledOrFirstError([after(20, 'a'), after(5, 1)])).resolves.toEqual(['a', 1]);
  });

  it('rejects with the first failure in order, once the slowest step has settled', async () => {
    let slowDone = false;
    const slow = after(60, 'slow').then((v) => {
      slowDone = true;
      return v;
    });
    const outcome = allSettledOrFirstError([after(5, 'first', true), slow, after(10, 'second', true)]);
    await expect(outcome).rejects.toThrow('first');
    expect(slowDone).toBe(true);
  });
});

describe('timed', () => {
  it('records how long a step took, failed or not, and names a failed step', async () => {
    const took: Record<string, number> = {};
    await timed(took, 'ok', () => after(20, 1));
    const failure = await timed(took, 'slowReadMs', () => after(20, 'no', true)).then(
      () => new Error('resolved'),
      (err: unknown) => err as Error,
    );
    expect(failure.message).toMatch(/^slowReadMs failed after \d+ ms: no$/);
    expect((failure.cause as Error).message).toBe('no');
    expect(took['ok']).toBeGreaterThanOrEqual(15);
    expect(took['slowReadMs']).toBeGreaterThanOrEqual(15);
  });
});
