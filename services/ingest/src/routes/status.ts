import type { FastifyPluginAsync } from 'fastify';
import {
  HUB_VERSION,
  queueStatsEndpoint,
  vmStatusEndpoint,
  workersSummaryEndpoint,
  type SignVmSummary,
  type StatusResponse,
} from '@perry-hub/contracts';
import { call } from '@perry-hub/runtime';
import type { BusDeps } from './license.js';

/**
 * `GET /api/v1/status`: the original's shape, with the queue answered by the scheduler and the
 * workers by the worker-gateway over the bus. `sign_vms` is appended when a vm-controller
 * answers and manages VMs (provider azure or command); without one, or with automatic VM start
 * disabled (the default without Azure settings), the answer is exactly the original's, and the
 * vm-controller answers without reading its bucket.
 */
export function statusRoutes(deps: BusDeps): FastifyPluginAsync {
  return async (app) => {
    app.get('/api/v1/status', async (): Promise<StatusResponse & { sign_vms?: SignVmSummary[] }> => {
      const [queue, workers, vms] = await Promise.all([
        call(deps.nc, deps.subjects, queueStatsEndpoint, {}),
        call(deps.nc, deps.subjects, workersSummaryEndpoint, {}),
        // Without a provider the pools are not shown: the vm-controller then answers at once.
        call(deps.nc, deps.subjects, vmStatusEndpoint, { managedOnly: true }).catch(() => undefined),
      ]);
      return {
        status: 'ok',
        queue_length: queue.queueLength,
        perry_version: HUB_VERSION,
        expected_perry_version: workers.expectedPerryVersion,
        supported_targets: workers.supportedTargets,
        connected_workers: workers.connectedWorkers,
        ...(vms && vms.provider !== 'none'
          ? {
              sign_vms: vms.pools.map(({ pool, capability, power, draining, message }) => ({
                pool,
                capability,
                power,
                draining,
                message,
              })),
            }
          : {}),
      };
    });
  };
}
