/**
 * Log lines about what strangers do (refused connections, bad frames, dropped worker messages),
 * bounded: the first of a kind in an interval is written with its details, the rest of that
 * interval are counted and written as one summary line when it ends. Thousands of bad frames a
 * second therefore cost a few lines per interval, not one each (a worker flooding frames for
 * unknown jobs used to write a warn line per frame).
 */
import type { Logger } from 'pino';

interface Kind {
  /** When the current interval began (its first line was written then). */
  since: number;
  suppressed: number;
}

export class Notices {
  readonly #log: Logger;
  readonly #intervalMs: number;
  readonly #kinds = new Map<string, Kind>();
  #timer: NodeJS.Timeout | undefined;

  constructor(log: Logger, intervalMs: number) {
    this.#log = log;
    this.#intervalMs = intervalMs;
  }

  /** Note one occurrence of `kind`; `details` are logged only if this is the interval's first. */
  note(kind: string, details: Record<string, unknown> = {}): void {
    const now = Date.now();
    const current = this.#kinds.get(kind);
    if (current && now - current.since < this.#intervalMs) {
      current.suppressed++;
      this.#arm();
      return;
    }
    if (current) this.#summarise(kind, current);
    this.#kinds.set(kind, { since: now, suppressed: 0 });
    this.#log.warn(details, kind);
  }

  /** End intervals that are over: one summary line per kind that had more than its first line. */
  flush(now = Date.now(), force = false): void {
    for (const [kind, state] of this.#kinds) {
      if (!force && now - state.since < this.#intervalMs) continue;
      this.#summarise(kind, state);
      this.#kinds.delete(kind);
    }
    if (this.#kinds.size === 0) this.stop();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  #summarise(kind: string, state: Kind): void {
    if (state.suppressed === 0) return;
    this.#log.warn({ count: state.suppressed, sinceMs: Date.now() - state.since }, `${kind} (repeated)`);
    state.suppressed = 0;
  }

  /** A timer runs only while something waits to be summarised: nothing ticks while all is quiet. */
  #arm(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => this.flush(), Math.max(50, Math.floor(this.#intervalMs / 2)));
    this.#timer.unref();
  }
}
