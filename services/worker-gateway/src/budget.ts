/**
 * A token bucket: a sustained rate with room for a burst. Used per worker connection for the
 * progress and log messages it may have relayed; a build's burst of compiler output fits the
 * burst, a flood does not.
 */
export class TokenBucket {
  readonly #ratePerSec: number;
  readonly #capacity: number;
  #tokens: number;
  #at: number;

  constructor(ratePerSec: number, capacity: number, now = Date.now()) {
    this.#ratePerSec = ratePerSec;
    this.#capacity = capacity;
    this.#tokens = capacity;
    this.#at = now;
  }

  /** Take `amount` if available; false (and nothing taken) when the bucket cannot cover it. */
  take(amount: number, now = Date.now()): boolean {
    this.#tokens = Math.min(this.#capacity, this.#tokens + ((now - this.#at) / 1000) * this.#ratePerSec);
    this.#at = now;
    if (this.#tokens < amount) return false;
    this.#tokens -= amount;
    return true;
  }
}

/** Messages and bytes together: a message is relayed only when both budgets cover it. */
export class MessageBudget {
  readonly #messages: TokenBucket;
  readonly #bytes: TokenBucket;

  constructor(limits: { messagesPerSec: number; burstMessages: number; bytesPerSec: number; burstBytes: number }) {
    this.#messages = new TokenBucket(limits.messagesPerSec, limits.burstMessages);
    this.#bytes = new TokenBucket(limits.bytesPerSec, limits.burstBytes);
  }

  allow(bytes: number, now = Date.now()): boolean {
    // A message refused for want of a message token has spent its bytes: harmless, it is a flood.
    if (!this.#bytes.take(bytes, now)) return false;
    return this.#messages.take(1, now);
  }
}
