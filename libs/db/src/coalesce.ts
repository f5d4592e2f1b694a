/**
 * Bookkeeping writes that may lag: markers whose loss in a crash costs only a repeated,
 * deduplicated action on recovery (an outbox entry republished under the same message id, an
 * announcement re-sent within the stream's duplicate window). Keys added within `delayMs` of each
 * other go out in one `UPDATE ... WHERE key IN (...)`; nothing is scheduled while nothing waits.
 *
 *   const published = new CoalescedUpdate(db, (keys, now) => ['UPDATE t SET done_at = ? WHERE id IN (?)', [now, keys]]);
 *   published.add(id);           // written within delayMs
 *   await published.flush();     // before reading what the marker hides; on stop
 */
import type { Pool } from 'mysql2/promise';

export interface CoalescedUpdateOptions {
  /** How long the first waiting key waits for others. Default 250 ms. */
  readonly delayMs?: number;
  /** Written at once when this many keys wait. Default 200. */
  readonly maxKeys?: number;
  /** A failed write; its keys wait for the next one. */
  readonly onError?: (err: unknown) => void;
}

export class CoalescedUpdate {
  readonly #db: Pool;
  readonly #statement: (keys: string[], now: number) => [string, unknown[]];
  readonly #delayMs: number;
  readonly #maxKeys: number;
  readonly #onError: (err: unknown) => void;
  #waiting = new Set<string>();
  #timer: NodeJS.Timeout | undefined;
  #writing: Promise<void> = Promise.resolve();

  constructor(
    db: Pool,
    statement: (keys: string[], now: number) => [string, unknown[]],
    options: CoalescedUpdateOptions = {},
  ) {
    this.#db = db;
    this.#statement = statement;
    this.#delayMs = options.delayMs ?? 250;
    this.#maxKeys = options.maxKeys ?? 200;
    this.#onError = options.onError ?? (() => undefined);
  }

  /** Keys waiting to be written. */
  get size(): number {
    return this.#waiting.size;
  }

  add(key: string): void {
    this.#waiting.add(key);
    if (this.#waiting.size >= this.#maxKeys) {
      void this.flush().catch(this.#onError);
      return;
    }
    this.#arm();
  }

  #arm(): void {
    if (this.#timer) return;
    this.#timer = setTimeout(() => void this.flush().catch(this.#onError), this.#delayMs);
    this.#timer.unref();
  }

  /** Writes what waits (after a write in progress); rejects if the write failed (its keys are tried again). */
  flush(): Promise<void> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const write = this.#writing.then(async () => {
      if (this.#waiting.size === 0) return;
      const keys = [...this.#waiting];
      this.#waiting = new Set();
      const [sql, params] = this.#statement(keys, Date.now());
      try {
        await this.#db.query(sql, params);
      } catch (err) {
        for (const key of keys) this.#waiting.add(key);
        this.#arm();
        throw err;
      }
    });
    this.#writing = write.catch(() => undefined);
    return write;
  }
}
