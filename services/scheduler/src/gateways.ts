/**
 * Workers die with their gateway instance. A gateway killed (alone, or with the whole hub) leaves
 * its workers' presence entries behind; waiting for them to go silent took a minute, during which
 * the scheduler assigned to ghosts and their jobs held licenses' concurrency. Instead, the leader
 * watches the instances' liveness records: once a gateway's record is deleted (its successor says
 * it died) or expired, its workers are forgotten and their jobs re-queued.
 *
 * The silence rule (`PERRY_HUB_WORKER_LOST_MS`) still covers a worker whose gateway is not known;
 * while a gateway's record is fresh, it vouches for its workers (their entries are rewritten only
 * when something changes: 10,000 idle workers cost no heartbeats), and the gateway itself closes
 * a silent worker's connection and deletes its entry.
 */
import type { NatsConnection } from '@nats-io/nats-core';
import { LivenessView, type InstanceState, type Logger, type Vouch } from '@perry-hub/runtime';
import { releaseJob } from './outcomes.js';
import { inBackground } from './sweeps.js';
import type { Context, QueuedInfo } from './state.js';

export interface WorkerRef {
  readonly workerId: string;
  readonly gatewayId: string;
  readonly name?: string;
}

/**
 * Pure: the workers to release, given what is known of their gateways. Only a gateway known to be
 * dead releases its workers; an unknown one (its record not seen yet, or long gone) is left to the
 * silence rule rather than guessed about.
 */
export function workersToRelease(workers: Iterable<WorkerRef>, gateway: (id: string) => InstanceState): string[] {
  const out: string[] = [];
  // Judged once per gateway: thousands of workers share a few gateways.
  const states = new Map<string, InstanceState>();
  for (const w of workers) {
    let state = states.get(w.gatewayId);
    if (state === undefined) states.set(w.gatewayId, (state = gateway(w.gatewayId)));
    if (state === 'dead') out.push(w.workerId);
  }
  return out;
}

const RELEASED_KEPT_MS = 600_000;

export class GatewayWatch {
  readonly #ctx: Context;
  readonly #view: LivenessView;
  /** Workers whose presence names a dead gateway, never added to the dispatchable set. */
  readonly #ghosts = new Map<string, WorkerRef>();
  /**
   * Released workers, kept a while: jobs on them may be read from MySQL after the release (a new
   * leader reconciles while the presence watch already reports ghosts).
   */
  readonly #released = new Map<string, { name: string | undefined; at: number }>();
  #busy = Promise.resolve();

  /**
   * `onBehind`: the watch of the gateways' records was found behind its bucket (and started
   * afresh); gateways may have been taken for dead and their workers released meanwhile.
   */
  constructor(ctx: Context, instancesBucket: string, ttlMs: number, onBehind: () => void) {
    this.#ctx = ctx;
    this.#view = new LivenessView({
      bucket: instancesBucket,
      services: ['worker-gateway'],
      ttlMs,
      onGone: () => inBackground(ctx, "releasing a gone gateway's workers", this.sweep()),
      onBehind,
    });
  }

  start(nc: NatsConnection, log: Logger): Promise<void> {
    return this.#view.start(log, nc);
  }

  stop(): void {
    this.#view.stop();
  }

  /** What a live gateway last said for its workers (its liveness record), on its clock. */
  vouch(gatewayId: string, now = this.#ctx.now()): Vouch | undefined {
    return this.#view.vouch(gatewayId, now);
  }

  /** A presence entry is a ghost when its gateway is already known dead: release, do not add. */
  isGhost(ref: WorkerRef): boolean {
    if (this.#view.state(ref.gatewayId) !== 'dead') return false;
    this.#ghosts.set(ref.workerId, ref);
    this.sweep();
    return true;
  }

  /** Release what dead gateways held; serialised, so one worker is not released twice at once. */
  sweep(): Promise<void> {
    this.#busy = this.#busy
      .then(() => this.#release())
      .catch((err: unknown) => {
        this.#ctx.log.error({ err }, 'releasing the workers of a dead gateway failed');
      });
    return this.#busy;
  }

  async #release(): Promise<void> {
    const ctx = this.#ctx;
    const now = ctx.now();
    const refs = [...ctx.workers.values(), ...this.#ghosts.values()];
    const gone = workersToRelease(refs, (id) => this.#view.state(id, now));
    for (const [workerId, { at }] of this.#released) if (now - at > RELEASED_KEPT_MS) this.#released.delete(workerId);
    for (const job of [...ctx.running.values()]) {
      const released = this.#released.get(job.workerId);
      if (released && !job.pending) await releaseJob(ctx, job, released.name);
    }
    if (gone.length === 0) return;
    for (const workerId of gone) {
      const ref = refs.find((r) => r.workerId === workerId);
      ctx.workers.delete(workerId);
      this.#ghosts.delete(workerId);
      // Its presence entry stays: readers skip a dead gateway's entries, and a live gateway
      // deletes them once long silent (the scheduler may only read the bucket).
      this.#released.set(workerId, { name: ref?.name, at: now });
      const jobs = [...ctx.running.values()].filter((j) => j.workerId === workerId && !j.pending);
      for (const job of jobs) await releaseJob(ctx, job, ref?.name);
      ctx.log.warn(
        { workerId, worker: ref?.name, gatewayId: ref?.gatewayId, jobs: jobs.length },
        'worker released: its gateway instance is gone',
      );
    }
    ctx.kick();
  }
}

/**
 * Pure: may this worker take this job now? Nobody while the job waits for the worker that held
 * it to claim it back (until the end of the wait is dealt with: endWait); then not that worker,
 * for a while.
 */
export function refusesJob(
  job: Pick<QueuedInfo, 'avoid'> | undefined,
  workerName: string | undefined,
  now: number,
): boolean {
  const avoid = job?.avoid;
  if (avoid === undefined) return false;
  if (avoid.holdUntilMs !== undefined) return true;
  return avoid.workerName === workerName && now < avoid.untilMs;
}
