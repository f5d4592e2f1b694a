import { isHubError } from '@perry-hub/contracts';

export interface RetryOptions {
  /** Give up after this long (the last failure is rethrown). */
  readonly forMs: number;
  readonly firstDelayMs?: number;
  readonly maxDelayMs?: number;
  /** Checked before each new attempt: stop early when the caller no longer cares. */
  readonly cancelled?: () => boolean;
}

/** A failure another attempt may fix: the error says so (HubError) or it is not a HubError at all. */
export function isRetryable(err: unknown): boolean {
  return isHubError(err) ? err.retry !== 'never' : true;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Run `attempt` until it succeeds, fails for good, or `forMs` has passed, with exponential
 * backoff. Used where the peer may be restarting or failing over (the scheduler, JetStream).
 */
export async function retrying<T>(attempt: () => Promise<T>, options: RetryOptions): Promise<T> {
  const deadline = Date.now() + options.forMs;
  let delayMs = options.firstDelayMs ?? 100;
  for (;;) {
    try {
      return await attempt();
    } catch (err) {
      if (!isRetryable(err) || Date.now() + delayMs > deadline || options.cancelled?.()) throw err;
      await sleep(delayMs);
      delayMs = Math.min(delayMs * 2, options.maxDelayMs ?? 2_000);
    }
  }
}
