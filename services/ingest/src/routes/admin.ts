/**
 * `GET /api/v1/admin/workers` and `POST /api/v1/admin/update-perry` (reference 1.2 #2, #3): the
 * worker-gateway knows the workers; these routes only check the admin secret and keep the
 * original's shapes (capabilities as the comma-wrapped string, `unknown` for a missing version).
 */
import type { FastifyPluginAsync } from 'fastify';
import {
  adminWorkersEndpoint,
  UpdatePerryBody,
  updatePerryEndpoint,
  type AdminWorkersResponse,
  type UpdatePerryResponse,
} from '@perry-hub/contracts';
import { call, decode } from '@perry-hub/runtime';
import { requireAdmin } from '../auth.js';
import type { BusDeps } from './license.js';

export function adminRoutes(deps: BusDeps & { adminSecret: string }): FastifyPluginAsync {
  return async (app) => {
    app.get('/api/v1/admin/workers', async (request): Promise<AdminWorkersResponse> => {
      requireAdmin(request, deps.adminSecret);
      const result = await call(deps.nc, deps.subjects, adminWorkersEndpoint, {});
      return {
        expected_version: result.expectedVersion,
        workers: result.workers.map((w) => ({
          name: w.name,
          perry_version: w.perryVersion,
          capabilities: `,${w.capabilities.join(',')},`,
          busy: w.busy,
        })),
      };
    });

    app.post('/api/v1/admin/update-perry', async (request): Promise<UpdatePerryResponse> => {
      requireAdmin(request, deps.adminSecret);
      const body = decode(UpdatePerryBody, request.body ?? {}, 'request body');
      const result = await call(
        deps.nc,
        deps.subjects,
        updatePerryEndpoint,
        body.expected_version ? { expectedVersion: body.expected_version } : {},
      );
      return {
        ok: true,
        workers_notified: result.workersNotified,
        expected_version: result.expectedVersion,
        workers: result.workers.map((w) => ({
          name: w.name,
          perry_version: w.perryVersion || 'unknown',
          busy: w.busy,
        })),
      };
    });
  };
}
