/**
 * What the leader hears on the bus besides its intake: worker presence (the gateways' bucket),
 * lost workers and job activity (the gateways' subjects), and VM pool states (the vm-controller's
 * bucket). Each updates the leader's view and starts a round where that may dispatch something.
 */
import { JobActivity, VmPoolState, WorkerLifecycle, WorkerPresence } from '@perry-hub/contracts';
import { isValid } from '@perry-hub/runtime';
import type { KnownWorker, Context } from './state.js';
import * as sweeps from './sweeps.js';

/** A worker's presence entry changed (`undefined`: deleted). `isGhost`: of a gateway not live. */
export function onPresence(
  ctx: Context,
  isGhost: (presence: WorkerPresence) => boolean,
  key: string,
  value: unknown,
): void {
  if (value === undefined) {
    const name = ctx.workers.get(key)?.name;
    if (ctx.workers.delete(key))
      sweeps.inBackground(ctx, "releasing a departed worker's jobs", sweeps.loseWorkerJobs(ctx, key, name));
    return;
  }
  if (!isValid(WorkerPresence, value)) return;
  const known = ctx.workers.get(key);
  const jobs = value.jobs ? new Set(value.jobs.map((j) => `${j.jobId}:${j.attempt}`)) : undefined;
  if (!known && isGhost(value)) return;
  if (known) {
    known.heartbeatAt = value.heartbeatAt;
    known.jobs = jobs;
    return;
  }
  const worker: KnownWorker = {
    workerId: value.workerId,
    name: value.name,
    gatewayId: value.gatewayId,
    capabilities: new Set(value.capabilities.map((c) => c.toLowerCase())),
    maxConcurrent: value.maxConcurrent,
    connectedAt: value.connectedAt,
    heartbeatAt: value.heartbeatAt,
    jobs,
    avoidUntil: 0,
  };
  ctx.workers.set(key, worker);
  ctx.log.info(
    {
      workerId: worker.workerId,
      worker: worker.name,
      gatewayId: worker.gatewayId,
      sinceConnectMs: ctx.now() - worker.connectedAt,
    },
    'worker dispatchable',
  );
  ctx.kick();
}

/** A VM pool's state; `announced`: what waiting CLIs were last told, by job. */
export function onVmState(ctx: Context, announced: Map<string, string>, value: unknown): void {
  if (value === undefined || !isValid(VmPoolState, value)) return;
  ctx.vmPools.set(value.capability, value);
  const was = ctx.draining.has(value.capability);
  if (value.draining) ctx.draining.add(value.capability);
  else ctx.draining.delete(value.capability);
  if (was && !value.draining) ctx.kick();
  // Waiting CLIs hear why they wait (the VM is booting, or no VM can be started).
  sweeps.inBackground(ctx, 'telling waiting CLIs about a VM pool', sweeps.announcePositions(ctx, announced));
}

export function onLost(ctx: Context, data: unknown): void {
  if (!isValid(WorkerLifecycle, data)) return;
  const name = ctx.workers.get(data.workerId)?.name;
  ctx.workers.delete(data.workerId);
  sweeps.inBackground(ctx, "re-queueing a lost worker's jobs", sweeps.loseWorkerJobs(ctx, data.workerId, name));
}

export function onActivity(ctx: Context, data: unknown): void {
  if (!isValid(JobActivity, data)) return;
  for (const ref of data.jobs) {
    const job = ctx.running.get(ref.jobId);
    if (job && job.attempt === ref.attempt) {
      job.lastActivityAt = Math.max(job.lastActivityAt, data.at);
      if (!job.active) ctx.touched();
      job.active = true;
    }
  }
}
