/**
 * The scheduler owns the job lifecycle. Any number of instances may run: all answer the read
 * endpoints (from MySQL, the system of record), and the one holding the lease dispatches and
 * serves the endpoints that move jobs. A standby takes over within the lease TTL, rebuilding its
 * state from MySQL.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { Kvm } from '@nats-io/kv';
import type { Service } from '@nats-io/services';
import {
  HUB_VERSION,
  HubError,
  authorizeTransferEndpoint,
  cancelJobEndpoint,
  jobStatusEndpoint,
  queuePositionEndpoint,
  queueStatsEndpoint,
  queueSummaryEndpoint,
  topologyNames,
  workerEventEndpoint,
  type JobStatus,
  type JobStatusReply,
} from '@perry-hub/contracts';
import type { Pool, RowDataPacket } from '@perry-hub/db';
import { Lease, defineService, handle, serveEndpoints } from '@perry-hub/runtime';
import { SchedulerConfig } from './config.js';
import { Dispatcher } from './dispatcher.js';
import { cancelJob, onWorkerEvent } from './handlers.js';
import { leaderPosition, recordPosition } from './positions.js';
import { sortKey, type Context } from './state.js';
import { JobStore } from './store.js';
import { queueSummary } from './waiting.js';

export { SchedulerConfig } from './config.js';

export async function countQueued(db: Pool): Promise<number> {
  const [rows] = await db.query<RowDataPacket[]>("SELECT COUNT(*) AS n FROM builds WHERE status = 'queued'");
  return Number(rows[0]?.['n'] ?? 0);
}

function sameToken(token: string, hash: string | null): boolean {
  if (!hash) return false;
  const given = createHash('sha256').update(token).digest();
  const stored = Buffer.from(hash, 'hex');
  return stored.length === given.length && timingSafeEqual(given, stored);
}

/**
 * What authorize-transfer needs of a running job, from the leader's memory: it recorded the
 * assignment (and its token's hash) itself, and every later change of the row goes through it.
 * Undefined (read the row) while the assignment is being written or when something is unknown.
 */
function runningTransfer(ctx: Context | undefined, jobId: string) {
  const job = ctx?.running.get(jobId);
  if (!job || job.pending || job.tokenHash === undefined || !job.tarballRef) return undefined;
  return {
    hash: job.tokenHash,
    attempt: job.attempt,
    status: 'running',
    stage: job.stage,
    tarballRef: job.tarballRef,
    buildType: job.buildType ?? 'app',
  };
}

export const scheduler = defineService({
  name: 'scheduler',
  config: SchedulerConfig,
  needsDb: true,
  start: async (deps, config) => {
    const db = deps.db as Pool;
    const store = new JobStore(db);
    let dispatcher: Dispatcher | undefined;
    let leaderEndpoints: Service | undefined;
    const leader = () => dispatcher?.ctx;

    const becomeLeader = async () => {
      const d = new Dispatcher({
        nc: deps.nc,
        subjects: deps.subjects,
        log: deps.log,
        config,
        store,
        metrics: deps.metrics,
      });
      dispatcher = d;
      await d.start();
      leaderEndpoints = await serveEndpoints(
        { nc: deps.nc, subjects: deps.subjects, service: 'scheduler', version: HUB_VERSION, log: deps.log },
        [
          handle(workerEventEndpoint, (event) => onWorkerEvent(d.ctx, event)),
          handle(cancelJobEndpoint, (request) => cancelJob(d.ctx, request)),
          handle(queueSummaryEndpoint, () => queueSummary(d.ctx)),
        ],
      );
    };
    const stepDown = async () => {
      await leaderEndpoints?.stop();
      leaderEndpoints = undefined;
      await dispatcher?.stop();
      dispatcher = undefined;
    };

    const kv = await new Kvm(deps.nc).open(topologyNames(config.subjectPrefix).leasesBucket);
    const lease = new Lease(kv, {
      key: 'scheduler',
      holder: deps.instanceId,
      predecessors: deps.predecessors,
      ttlMs: config.leaseTtlMs,
      log: deps.log,
      onAcquired: () => {
        becomeLeader().catch(async (err: unknown) => {
          deps.log.error({ err }, 'could not take over dispatching; giving the lease back');
          await stepDown();
          await lease.release();
        });
      },
      onLost: (reason) => {
        deps.log.warn({ reason }, 'scheduler lease lost; standing by');
        void stepDown();
      },
    });

    deps.serve([
      handle(queueStatsEndpoint, async () => ({ queueLength: leader()?.queued.size ?? (await countQueued(db)) })),
      handle(queuePositionEndpoint, async ({ jobId, recorded }) => {
        const ctx = leader();
        if (!ctx) return { position: await recordPosition(db, config.agingStepMs, jobId) };
        const queued = ctx.queue.position(jobId);
        if (queued > 0 || ctx.running.has(jobId)) return { position: queued };
        // Just recorded and not taken from the intake yet: ranked where it will go.
        if (recorded)
          return {
            position: ctx.queue.ahead(recorded.targets, sortKey(ctx, { ...recorded, stage: 'build' }), jobId) + 1,
          };
        const row = await store.get(jobId);
        if (!row) throw new HubError('JOB_NOT_FOUND', 'Job not found');
        return { position: leaderPosition(ctx, row) };
      }),
      handle(jobStatusEndpoint, async ({ jobId }): Promise<JobStatusReply> => {
        // The leader knows the jobs that are not finished; only a finished one is read.
        const known = leader();
        if (known?.queued.has(jobId)) return { found: true, status: 'queued', position: known.queue.position(jobId) };
        if (known?.running.has(jobId)) return { found: true, status: 'running', position: 0 };
        const row = await store.get(jobId);
        if (!row) return { found: false, status: null, position: 0 };
        const ctx = leader();
        const position =
          row.status !== 'queued'
            ? 0
            : ctx
              ? leaderPosition(ctx, row)
              : await recordPosition(db, config.agingStepMs, jobId);
        if (row.status !== 'completed') return { found: true, status: row.status as JobStatus, position };
        return { found: true, status: row.status, position, delivery: row.resultDelivery ?? 'pending' };
      }),
      handle(authorizeTransferEndpoint, async ({ jobId, token }) => {
        const row = runningTransfer(leader(), jobId) ?? (await store.tokenHash(jobId));
        if (!row) throw new HubError('FORBIDDEN', 'Invalid job token');
        // A job back in the queue (or finished) leaves its last worker holding a stale token: not a
        // guess, so not counted against the worker's address as a failed authentication.
        if (row.status !== 'running') throw new HubError('JOB_NOT_RUNNING', 'Job is not in running state');
        if (!sameToken(token, row.hash)) throw new HubError('FORBIDDEN', 'Invalid job token');
        if (!row.tarballRef) throw new HubError('NOT_FOUND', `Tarball not found for job: ${jobId}`);
        const stage: 'build' | 'sign' = row.stage === 'sign' ? 'sign' : 'build';
        return {
          attempt: row.attempt,
          stage,
          tarballRef: row.tarballRef,
          ...(row.buildType === 'plugin' ? { buildType: 'plugin' as const } : {}),
        };
      }),
    ]);
    lease.campaign();
    deps.ready('lease', () => (lease.closed ? 'lease campaign stopped' : 'ok'));

    return {
      stop: async () => {
        await lease.close();
        await stepDown();
      },
    };
  },
});
