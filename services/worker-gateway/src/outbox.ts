/**
 * The bus side of one worker connection, in the order the worker spoke. Event appends are
 * pipelined (a JetStream publish is a round trip; waiting for each ack in turn would cap a busy
 * build's log rate), but a step that must come after them, such as handing a `complete` to the
 * scheduler, first waits for every earlier append to be stored: a CLI never sees a build end
 * before its last log lines.
 *
 * Ordering holds while the bus works. If an append fails it is retried under the same
 * Nats-Msg-Id, so it is stored once, but possibly after appends that were already in flight
 * behind it: the price of pipelining, paid only during a JetStream outage.
 */
import type { Logger } from 'pino';

export type Step =
  | { readonly kind: 'append'; readonly append: () => Promise<void> }
  | { readonly kind: 'barrier'; readonly run: () => Promise<void> };

export interface OutboxOptions {
  /** Appends in flight before the next one waits for the oldest. */
  readonly window: number;
  /** Queued steps past which the owner should stop reading its socket. */
  readonly highWater: number;
  readonly onPressure: (high: boolean) => void;
  readonly log: Logger;
}

export class Outbox {
  readonly #steps: Step[] = [];
  readonly #inflight: Promise<void>[] = [];
  readonly #options: OutboxOptions;
  #pumping: Promise<void> | undefined;
  #high = false;

  constructor(options: OutboxOptions) {
    this.#options = options;
  }

  get size(): number {
    return this.#steps.length + this.#inflight.length;
  }

  push(step: Step): void {
    this.#steps.push(step);
    if (!this.#high && this.#steps.length >= this.#options.highWater) {
      this.#high = true;
      this.#options.onPressure(true);
    }
    this.#pumping ??= this.#pump().finally(() => {
      this.#pumping = undefined;
      if (this.#steps.length > 0) this.push({ kind: 'barrier', run: async () => undefined });
    });
  }

  /** Resolves when everything pushed so far has been done (or given up on). */
  async idle(): Promise<void> {
    while (this.#pumping) await this.#pumping;
    await Promise.all(this.#inflight);
  }

  async #pump(): Promise<void> {
    for (let step = this.#steps.shift(); step; step = this.#steps.shift()) {
      if (this.#high && this.#steps.length < this.#options.highWater / 2) {
        this.#high = false;
        this.#options.onPressure(false);
      }
      if (step.kind === 'append') {
        if (this.#inflight.length >= this.#options.window) await this.#inflight.shift();
        const p = this.#guard(step.append);
        this.#inflight.push(p);
        void p.then(() => {
          const i = this.#inflight.indexOf(p);
          if (i >= 0) this.#inflight.splice(i, 1);
        });
      } else {
        await Promise.all(this.#inflight);
        await this.#guard(step.run);
      }
    }
  }

  /** Steps retry on their own and log what they give up on; nothing may stop the pump. */
  async #guard(run: () => Promise<void>): Promise<void> {
    try {
      await run();
    } catch (err) {
      this.#options.log.error({ err }, 'outbox step failed');
    }
  }
}
