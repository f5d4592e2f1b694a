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
  reclaimJobEndpoint,
  topologyNames,
  workerEventEndpoint,
  type JobStatus,
  type JobStatusReply,
} from '@perry-hub/contracts';
import type { Pool, RowDataPacket } from '@perry-hub/db';
import { Lease, defineService, handle, serveEndpoints } from '@perry-hub/runtime';
import { SchedulerConfig } from './config.js';
import { Dispatcher } from './dispatcher.js';
import { cancelJob, onWorkerEvent, reclaimJob } from './handlers.js';
import { leaderPosition, placeInQueue, recordPosition } from './positions.js';
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

/** A released job still waiting for the worker that built its last attempt (reclaimJob). */
function waitsForItsWorker(ctx: Context | undefined, jobId: string, attempt: number): boolean {
  const job = ctx?.queued.get(jobId);
  const until = job?.avoid?.holdUntilMs;
  return job !== undefined && job.attempt === attempt && until !== undefined && ctx!.now() < until;
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
    const store = new JobStore(db, (err) => deps.log.warn({ err }, 'outbox marks not recorded yet; trying again'));
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
        // Step down and give the lease back: the next leader (perhaps this instance again)
        // starts from MySQL and fresh subscriptions.
        onFatal: () => void handBack(),
      });
      dispatcher = d;
      await d.start();
      leaderEndpoints = await serveEndpoints(
        { nc: deps.nc, subjects: deps.subjects, service: 'scheduler', version: HUB_VERSION, log: deps.log },
        [
          handle(workerEventEndpoint, (event) => onWorkerEvent(d.ctx, event)),
          handle(reclaimJobEndpoint, (request) => reclaimJob(d.ctx, request)),
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

    const handBack = async () => {
      await stepDown();
      await lease.release();
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
          await handBack();
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
        const queued = known?.queued.get(jobId);
        if (known && queued)
          return {
            found: true,
            status: 'queued',
            position: placeInQueue(known, jobId, queued.targets, sortKey(known, queued)),
          };
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
        // Or a build released while its worker goes on with it, until that worker claims it back.
        if (row.status !== 'running' && !(row.status === 'queued' && waitsForItsWorker(leader(), jobId, row.attempt)))
          throw new HubError('JOB_NOT_RUNNING', 'Job is not in running state');
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
        await store.flush().catch((err: unknown) => deps.log.warn({ err }, 'outbox marks not recorded'));
      },
    };
  },
});
