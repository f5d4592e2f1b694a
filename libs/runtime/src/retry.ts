import { JetStreamApiError, type JetStreamClient, type JetStreamPublishOptions, type PubAck } from '@nats-io/jetstream';
import { errors } from '@nats-io/nats-core';
import { HubError, isHubError } from '@perry-hub/contracts';

export interface RetryOptions {
  /** Give up after this long (the last failure is rethrown). */
  readonly forMs: number;
  readonly firstDelayMs?: number;
  readonly maxDelayMs?: number;
  /** Checked before each new attempt: stop early when the caller no longer cares. */
  readonly cancelled?: () => boolean;
}

/**
 * A failure another attempt may fix: the error says so (HubError) or it is not a HubError at all,
 * except a connection closed or draining, which no attempt can fix (this process is stopping).
 */
export function isRetryable(err: unknown): boolean {
  if (err instanceof errors.ClosedConnectionError || err instanceof errors.DrainingConnectionError) return false;
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

/** How long a JetStream append rides out a stream leader election or a node restart. */
export const JETSTREAM_PUBLISH_RETRY_MS = 15_000;

/**
 * `js.publish` that rides out a moment without a stream leader (no responders, a timeout, a
 * lost connection): on a cluster, a node's death leaves its streams leaderless for seconds. An
 * answer from JetStream other than 503 (too big, wrong sequence) is final. Give `msgID` so that an
 * append stored just before its ack was lost is not stored twice.
 */
export async function publishRetrying(
  js: JetStreamClient,
  subject: string,
  data: Uint8Array | string,
  options: Partial<JetStreamPublishOptions> & { readonly forMs?: number; readonly cancelled?: () => boolean } = {},
): Promise<PubAck> {
  const { forMs = JETSTREAM_PUBLISH_RETRY_MS, cancelled, ...publish } = options;
  return retrying(
    async () => {
      try {
        return await js.publish(subject, data, publish);
      } catch (err) {
        if (err instanceof JetStreamApiError && err.code !== 503)
          throw new HubError('INTERNAL_ERROR', `JetStream refused an append to ${subject}: ${err.message}`, {
            retry: 'never',
            cause: err,
          });
        throw err;
      }
    },
    { forMs, maxDelayMs: 1_000, ...(cancelled ? { cancelled } : {}) },
  );
}
