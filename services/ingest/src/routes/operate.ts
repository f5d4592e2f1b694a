/**
 * What runs where, for operators (admin secret): `GET /api/v1/workers` (every connected worker,
 * its capabilities, slots and jobs), `GET /api/v1/queue` (per target and tier: how many wait,
 * since when, and why) and `GET /api/v1/vms` (the sign VM pools). The worker-gateway knows the
 * workers (presence), the scheduler holding the lease the queue and why it waits, the
 * vm-controller the pools; these routes only check the caller (as the jobs API does) and reshape.
 */
import type { FastifyPluginAsync } from 'fastify';
import Type from 'typebox';
import {
  HubError,
  QueueResponse,
  VmsResponse,
  WorkersResponse,
  adminWorkersEndpoint,
  queueSummaryEndpoint,
  vmStatusEndpoint,
  type QueueResponse as QueueResponseT,
  type VmsResponse as VmsResponseT,
  type WorkersResponse as WorkersResponseT,
} from '@perry-hub/contracts';
import { call } from '@perry-hub/runtime';
import { requireAdminIdentity } from '../caller.js';
import type { BusDeps } from './license.js';

const iso = (ms: number) => new Date(ms).toISOString();
const isoOrNull = (ms: number | null) => (ms === null ? null : iso(ms));
const ADMIN = [{ bearer: [] }];
const ErrorEnvelope = Type.Object({ error: Type.Object({ code: Type.String(), message: Type.String() }) });

export function operateRoutes(deps: BusDeps & { adminSecret: string }): FastifyPluginAsync {
  return async (app) => {
    app.get(
      '/api/v1/workers',
      {
        schema: {
          summary: 'Connected workers: capabilities, slots, the jobs each runs, connected since, version (admin)',
          tags: ['operations'],
          security: ADMIN,
          response: { 200: WorkersResponse, 401: ErrorEnvelope, 403: ErrorEnvelope },
        },
      },
      async (request): Promise<WorkersResponseT> => {
        await requireAdminIdentity(deps, request);
        const result = await call(deps.nc, deps.subjects, adminWorkersEndpoint, {});
        return {
          expected_version: result.expectedVersion,
          workers: result.workers.map((w) => {
            const busy = Math.max(w.activeJobs, w.jobs.length);
            return {
              id: w.workerId,
              name: w.name,
              capabilities: w.capabilities,
              slots: { max: w.maxConcurrent, busy, free: Math.max(0, w.maxConcurrent - busy) },
              jobs: w.jobs.map((j) => ({ job_id: j.jobId, attempt: j.attempt })),
              connected_at: iso(w.connectedAt),
              perry_version: w.perryVersion,
              gateway: w.gatewayId,
            };
          }),
        };
      },
    );

    app.get(
      '/api/v1/queue',
      {
        schema: {
          summary: 'Queued jobs per target and tier: how many, the oldest wait, and why they wait (admin)',
          tags: ['operations'],
          security: ADMIN,
          response: { 200: QueueResponse, 401: ErrorEnvelope, 403: ErrorEnvelope, 503: ErrorEnvelope },
        },
      },
      async (request): Promise<QueueResponseT> => {
        await requireAdminIdentity(deps, request);
        const summary = await call(deps.nc, deps.subjects, queueSummaryEndpoint, {}).catch((err: unknown) => {
          throw new HubError('SERVICE_UNAVAILABLE', 'No scheduler holds the lease right now; try again shortly', {
            cause: err,
            retry: 'retry',
          });
        });
        return {
          at: iso(summary.at),
          queued: summary.queued,
          running: summary.running,
          queues: summary.lines.map((l) => ({
            target: l.target,
            tier: l.tier,
            queued: l.queued,
            oldest_queued_at: iso(l.oldestQueuedAt),
            oldest_wait_secs: Math.max(0, Math.floor((summary.at - l.oldestQueuedAt) / 1000)),
            waiting: l.waiting,
          })),
        };
      },
    );

    app.get(
      '/api/v1/vms',
      {
        schema: {
          summary:
            'Sign VM pools: provider, power state, draining, last start and boot time, idle deadline, last job, what waiting users are told (admin)',
          tags: ['operations'],
          security: ADMIN,
          response: { 200: VmsResponse, 401: ErrorEnvelope, 403: ErrorEnvelope, 503: ErrorEnvelope },
        },
      },
      async (request): Promise<VmsResponseT> => {
        await requireAdminIdentity(deps, request);
        const status = await call(deps.nc, deps.subjects, vmStatusEndpoint, {});
        return {
          provider: status.provider,
          pools: status.pools.map((p) => ({
            pool: p.pool,
            capability: p.capability,
            power: p.power,
            draining: p.draining,
            start_requested_at: isoOrNull(p.startRequestedAt),
            last_job_ended_at: isoOrNull(p.lastJobEndedAt),
            last_boot_secs: p.lastBootMs == null ? null : p.lastBootMs / 1000,
            idle_until: isoOrNull(p.idleUntil ?? null),
            updated_at: iso(p.updatedAt),
            message: p.message,
          })),
        };
      },
    );
  };
}
