/**
 * Everything the controller hears, folded into one snapshot for `decide()`: the scheduler's
 * queue depth, pre-warm hints until their job ends, worker presence from the gateways' KV
 * bucket, and the provider's power readings (which the controller feeds in). Messages that do
 * not match their contract are logged and dropped; they never reach a decision.
 */
import type { KV } from '@nats-io/kv';
import type { NatsConnection, Subscription } from '@nats-io/nats-core';
import { JobDone, PrewarmSignal, QueueDepth, WorkerPresence, type Subjects } from '@perry-hub/contracts';
import { jsonOf, problems, watchKv, type Logger } from '@perry-hub/runtime';
import type { TSchema, Static } from 'typebox';
import type { CloudObservation, Signals } from './memory.js';

export interface SignalFeedDeps {
  readonly nc: NatsConnection;
  readonly subjects: Subjects;
  readonly presence: KV;
  readonly log: Logger;
  readonly prewarmTtlMs: number;
  /**
   * The pools' capabilities: only workers with one of them are decided about. A hub with 10,000
   * Linux workers and one sign pool must not copy and scan 10,000 entries at every decision.
   */
  readonly capabilities: ReadonlySet<string>;
  /** Called after anything changed. */
  readonly onChange: () => void;
  readonly now: () => number;
}

export class SignalFeed {
  readonly #deps: SignalFeedDeps;
  #queue: Signals['queue'] = null;
  readonly #workers = new Map<string, WorkerPresence>();
  readonly #prewarms = new Map<string, PrewarmSignal>();
  /** The `done` subscription of each job with a hint, until it ends or the hint expires. */
  readonly #ends = new Map<string, Subscription>();
  #cloud: Record<string, CloudObservation> = {};
  readonly #subs: Subscription[] = [];
  #stopWatch: (() => void) | undefined;

  constructor(deps: SignalFeedDeps) {
    this.#deps = deps;
  }

  async start(): Promise<void> {
    const { nc, subjects } = this.#deps;
    this.#listen(subjects.queueDepth, QueueDepth, (depth) => {
      this.#queue = { depth, receivedAt: this.#deps.now() };
    });
    this.#listen(subjects.vmPrewarm, PrewarmSignal, (hint) => {
      this.#prewarms.set(hint.jobId, hint);
      this.#awaitEnd(hint.jobId);
    });
    await nc.flush();
    await this.#watchPresence();
  }

  snapshot(): Signals {
    const now = this.#deps.now();
    for (const [jobId, hint] of this.#prewarms) {
      if (now - hint.at >= this.#deps.prewarmTtlMs) {
        this.#prewarms.delete(jobId);
        this.#forgetEnd(jobId);
      }
    }
    return {
      queue: this.#queue,
      workers: [...this.#workers.values()],
      prewarms: [...this.#prewarms.values()],
      cloud: { ...this.#cloud },
    };
  }

  /** A power reading taken by the controller. */
  observe(pool: string, observation: CloudObservation): void {
    this.#cloud[pool] = observation;
    this.#deps.onChange();
  }

  /** Readings taken before a takeover say nothing about what the previous holder did since. */
  forgetCloud(): void {
    this.#cloud = {};
  }

  stop(): void {
    for (const sub of this.#subs) sub.unsubscribe();
    for (const sub of this.#ends.values()) sub.unsubscribe();
    this.#ends.clear();
    this.#stopWatch?.();
  }

  /**
   * A job that ended (its first stage failed, or it finished) no longer needs its pre-warmed VM.
   * Only the `done` of a job with a hint is listened for, so the outcomes of the other builds
   * (most of them) are not delivered here. A `done` missed (published before this subscription
   * reached the server, or while disconnected) leaves the hint to its TTL, as before.
   */
  #awaitEnd(jobId: string): void {
    if (this.#ends.has(jobId)) return;
    const subject = this.#deps.subjects.jobDone(jobId);
    const sub = this.#listen(subject, JobDone, () => {
      this.#prewarms.delete(jobId);
      this.#forgetEnd(jobId);
    });
    this.#ends.set(jobId, sub);
    this.#subs.splice(this.#subs.indexOf(sub), 1);
  }

  #forgetEnd(jobId: string): void {
    this.#ends.get(jobId)?.unsubscribe();
    this.#ends.delete(jobId);
  }

  #listen<T extends TSchema>(subject: string, schema: T, apply: (value: Static<T>) => void): Subscription {
    const sub = this.#deps.nc.subscribe(subject, {
      callback: (err, msg) => {
        if (err) return this.#deps.log.warn({ err, subject }, 'subscription failed');
        let value: unknown;
        try {
          value = msg.json();
        } catch {
          return this.#deps.log.warn({ subject }, 'dropped a message that is not JSON');
        }
        const found = problems(schema, value);
        if (found.length > 0) return this.#deps.log.warn({ subject, problems: found }, 'dropped an invalid message');
        apply(value as Static<T>);
        this.#deps.onChange();
      },
    });
    this.#subs.push(sub);
    return sub;
  }

  async #watchPresence(): Promise<void> {
    const watch = await watchKv(this.#deps.presence);
    this.#stopWatch = () => watch.stop();
    void (async () => {
      for await (const entry of watch) {
        if (entry.operation !== 'PUT') {
          if (this.#workers.delete(entry.key)) this.#deps.onChange();
          continue;
        }
        const value = jsonOf(entry);
        const found = problems(WorkerPresence, value);
        if (found.length > 0) {
          this.#deps.log.warn({ key: entry.key, problems: found }, 'ignored an invalid presence entry');
          if (this.#workers.delete(entry.key)) this.#deps.onChange();
          continue;
        }
        const worker = value as WorkerPresence;
        const before = this.#workers.get(entry.key);
        if (!worker.capabilities.some((c) => this.#deps.capabilities.has(c))) {
          if (before && this.#workers.delete(entry.key)) this.#deps.onChange();
          continue;
        }
        this.#workers.set(entry.key, worker);
        // A heartbeat alone (the same slots, capabilities and connection) changes no decision.
        if (!before || !sameForDecisions(before, worker)) this.#deps.onChange();
      }
    })().catch((err: unknown) => this.#deps.log.error({ err }, 'presence watch ended'));
  }
}

/** What `decide()` reads of a worker. */
function sameForDecisions(a: WorkerPresence, b: WorkerPresence): boolean {
  return (
    a.activeJobs === b.activeJobs &&
    a.connectedAt === b.connectedAt &&
    a.capabilities.length === b.capabilities.length &&
    a.capabilities.every((c, i) => b.capabilities[i] === c)
  );
}
