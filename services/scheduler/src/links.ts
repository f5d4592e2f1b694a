/**
 * The leader's links to the bus: KV watches, subscriptions, consumers and timers, all ended by
 * one stop(). One that ends without stop() is fatal: the leader would go on deciding on a stale
 * view, so it must step down (as nats.js services stop on such a loss).
 */
import type { JsMsg } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/nats-core';
import { watchKv, type Logger } from '@perry-hub/runtime';

const decoder = new TextDecoder();

export interface LinksDeps {
  readonly nc: NatsConnection;
  readonly log: Logger;
  /** Called once, for the first link lost; never after stop(). */
  readonly onFatal: (err: Error) => void;
}

export class LeaderLinks {
  readonly #deps: LinksDeps;
  readonly #timers: NodeJS.Timeout[] = [];
  readonly #stops: (() => unknown)[] = [];
  #stopped = false;
  #stopping: Promise<void> | undefined;
  #fatalReported = false;

  constructor(deps: LinksDeps) {
    this.#deps = deps;
  }

  get stopped(): boolean {
    return this.#stopped;
  }

  /**
   * Also ended by stop(), in the order added; at once when stop() came first (a takeover still
   * starting when its lease was lost adds links after the teardown began).
   */
  onStop(stop: () => unknown): void {
    if (this.#stopped)
      Promise.resolve()
        .then(stop)
        .catch((err: unknown) => this.#deps.log.warn({ err }, 'a link added after the teardown did not end cleanly'));
    else this.#stops.push(stop);
  }

  /**
   * Every change of the bucket (a deleted or purged key as `undefined`), in the bucket's order,
   * with its revision; unparseable ones skipped.
   */
  async watch(what: string, kv: KV, onChange: (key: string, value: unknown, revision: number) => void): Promise<void> {
    const watcher = await watchKv(kv);
    this.onStop(() => watcher.stop());
    this.#untilStopped(`the watch of ${what}`, async () => {
      for await (const e of watcher) {
        let value: unknown;
        try {
          value = e.operation === 'PUT' ? e.json() : undefined;
        } catch {
          continue; // unparseable entries are ignored
        }
        onChange(e.key, value, e.revision);
      }
    });
  }

  /** Each message's JSON; malformed messages are skipped. */
  subscribe(subject: string, onMessage: (data: unknown) => void): void {
    const sub = this.#deps.nc.subscribe(subject, {
      callback: (err, msg) => {
        if (err) return this.#fatal(err);
        try {
          onMessage(JSON.parse(decoder.decode(msg.data)));
        } catch {
          // malformed messages are ignored
        }
      },
    });
    this.onStop(() => sub.unsubscribe());
  }

  /** Each message handed on as it comes (not awaited: one at a time would cap the rate at 1/RTT). */
  consume(what: string, messages: AsyncIterable<JsMsg> & { stop(): void }, onMessage: (m: JsMsg) => void): void {
    this.onStop(() => messages.stop());
    this.#untilStopped(what, async () => {
      for await (const m of messages) onMessage(m);
    });
  }

  /** A periodic task; skipped while its previous run is still going, and after stop(). */
  every(ms: number, task: () => Promise<void>): void {
    if (this.#stopped) return;
    let busy = false;
    const timer = setInterval(() => {
      if (busy || this.#stopped) return;
      busy = true;
      task()
        .catch((err: unknown) => this.#deps.log.error({ err }, 'scheduler task failed'))
        .finally(() => (busy = false));
    }, ms);
    this.#timers.push(timer);
  }

  /** A link found broken while it still runs (the caller looked): as fatal as one that ended. */
  fail(err: Error): void {
    this.#fatal(err);
  }

  /** Idempotent: every call waits for the one teardown. */
  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      this.#stopped = true;
      for (const t of this.#timers) clearInterval(t);
      for (const stop of this.#stops) await stop();
    })();
    return this.#stopping;
  }

  #untilStopped(what: string, loop: () => Promise<void>): void {
    loop()
      .then(() => this.#fatal(new Error(`${what} ended`)))
      .catch((err: unknown) => this.#fatal(err as Error));
  }

  #fatal(err: Error): void {
    if (this.#stopped || this.#fatalReported) return;
    this.#fatalReported = true;
    this.#deps.log.error({ err }, 'the dispatcher lost a subscription it depends on');
    this.#deps.onFatal(err);
  }
}
