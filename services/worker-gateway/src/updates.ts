/**
 * When a worker is told to update its Perry compiler. The original sent `update_perry` on every
 * hello of an outdated worker, and the Linux worker blocks its message loop while updating, so a
 * worker whose update failed reconnected into another update, forever (defect 37). Here a worker
 * name is told at most once per cool-down; the admin broadcast is explicit and not limited.
 */
export interface UpdatePolicyOptions {
  readonly cooldownMs: number;
  /** The version workers should run ('' = none): the admin-set one, else PERRY_EXPECTED_VERSION. */
  readonly expectedVersion: () => string;
  readonly now?: () => number;
}

export class UpdatePolicy {
  readonly #lastToldAt = new Map<string, number>();
  readonly #options: UpdatePolicyOptions;
  readonly #now: () => number;

  constructor(options: UpdatePolicyOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
  }

  get expectedVersion(): string {
    return this.#options.expectedVersion();
  }

  /** The original's rule (both versions non-empty and different), plus the cool-down. */
  atHello(name: string, perryVersion: string): boolean {
    const expected = this.expectedVersion;
    if (expected === '' || perryVersion === '' || perryVersion === expected) return false;
    const now = this.#now();
    const last = this.#lastToldAt.get(name);
    if (last !== undefined && now - last < this.#options.cooldownMs) return false;
    this.told(name, now);
    return true;
  }

  told(name: string, now = this.#now()): void {
    this.#lastToldAt.set(name, now);
    if (this.#lastToldAt.size > 10_000) this.#prune(now);
  }

  #prune(now: number): void {
    for (const [name, at] of this.#lastToldAt) {
      if (now - at >= this.#options.cooldownMs) this.#lastToldAt.delete(name);
    }
  }
}
