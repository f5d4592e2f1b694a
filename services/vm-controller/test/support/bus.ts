/**
 * Synthetic scheduler and worker-gateway for the vm-controller's tests: they publish exactly the
 * contracts' messages (QueueDepth every change and periodically, PrewarmSignal, JobDone) and
 * keep WorkerPresence entries in the presence bucket, as the real services will.
 */
import type { NatsConnection } from '@nats-io/nats-core';
import { Kvm, type KV } from '@nats-io/kv';
import {
  subjects as makeSubjects,
  topologyFor,
  topologyNames,
  type CapabilityDepth,
  type JobDone,
  type QueueDepth,
  type Subjects,
  type VmPoolState,
  type WorkerPresence,
} from '@perry-hub/contracts';
import { ensureTopology } from '@perry-hub/runtime';
import { connectTestNats, until } from '@perry-hub/testkit';

const encoder = new TextEncoder();

export interface Bus {
  readonly nc: NatsConnection;
  readonly subjects: Subjects;
  readonly presence: KV;
  readonly vm: KV;
  /** Every VmPoolState published, in order, with the time it arrived. */
  readonly states: { at: number; state: VmPoolState }[];
  /** Every message on `<p>.metrics.vm` and `<p>.metrics.vm-alert`. */
  readonly metrics: { at: number; subject: string; value: Record<string, unknown> }[];
  /** Set a capability's depth and publish at once (and every `periodMs` after). */
  depth(capability: string, depth: Partial<CapabilityDepth>): void;
  workerUp(id: string, capability: string, activeJobs?: number): Promise<void>;
  workerDown(id: string): Promise<void>;
  jobDone(jobId: string, outcome?: JobDone['outcome']): void;
  prewarm(capability: string, jobId: string): void;
  close(): Promise<void>;
}

export async function openBus(natsUrl: string, prefix: string, periodMs = 250): Promise<Bus> {
  const nc = await connectTestNats(natsUrl);
  await ensureTopology(nc, topologyFor(prefix, 'vm-controller'));
  const subjects = makeSubjects(prefix);
  const names = topologyNames(prefix);
  const kvm = new Kvm(nc);
  const presence = await kvm.open(names.presenceBucket);
  const vm = await kvm.open(names.vmBucket);
  const states: Bus['states'] = [];
  const metrics: Bus['metrics'] = [];
  nc.subscribe(`${prefix}.vm.*.state`, {
    callback: (_e, m) => void states.push({ at: Date.now(), state: m.json<VmPoolState>() }),
  });
  for (const subject of [subjects.metrics('vm'), subjects.metrics('vm-alert')]) {
    nc.subscribe(subject, { callback: (_e, m) => void metrics.push({ at: Date.now(), subject, value: m.json() }) });
  }
  const capabilities: Record<string, CapabilityDepth> = {};
  const workers = new Map<string, WorkerPresence>();
  const publishDepth = () => {
    const message: QueueDepth = { at: Date.now(), capabilities: { ...capabilities } };
    nc.publish(subjects.queueDepth, encoder.encode(JSON.stringify(message)));
  };
  const timer = setInterval(publishDepth, periodMs);
  publishDepth();
  await nc.flush();

  return {
    nc,
    subjects,
    presence,
    vm,
    states,
    metrics,
    depth: (capability, depth) => {
      const now = Date.now();
      const before = capabilities[capability] ?? { queued: 0, oldestQueuedAt: null, assigned: 0, running: 0 };
      const next = { ...before, ...depth };
      if (next.queued === 0) next.oldestQueuedAt = null;
      else if (next.oldestQueuedAt === null) next.oldestQueuedAt = now;
      capabilities[capability] = next;
      publishDepth();
    },
    workerUp: async (id, capability, activeJobs = 0) => {
      const now = Date.now();
      const existing = workers.get(id);
      const presenceEntry: WorkerPresence = {
        workerId: id,
        name: `sign worker ${id}`,
        capabilities: [capability],
        maxConcurrent: 2,
        activeJobs,
        perryVersion: '0.5.14',
        gatewayId: 'gw-test',
        connectedAt: existing?.connectedAt ?? now,
        heartbeatAt: now,
      };
      workers.set(id, presenceEntry);
      await presence.put(id, JSON.stringify(presenceEntry));
    },
    workerDown: async (id) => {
      workers.delete(id);
      await presence.delete(id);
    },
    jobDone: (jobId, outcome = 'succeeded') => {
      const done: JobDone = {
        jobId,
        outcome,
        licenseKey: 'PERRY-TEST',
        tier: 'pro',
        targets: ['windows-sign'],
        attempt: 1,
        finishedAt: Date.now(),
      };
      nc.publish(subjects.jobDone(jobId), encoder.encode(JSON.stringify(done)));
    },
    prewarm: (capability, jobId) => {
      nc.publish(subjects.vmPrewarm, encoder.encode(JSON.stringify({ capability, jobId, at: Date.now() })));
    },
    close: async () => {
      clearInterval(timer);
      await nc.close();
    },
  };
}

export { until };

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
