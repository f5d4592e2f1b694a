/**
 * `GET /api/v1/admin/workers` and `POST /api/v1/admin/update-perry` (reference 1.2 #2, #3): the
 * worker-gateway knows the workers; these routes only check the admin secret and keep the
 * original's shapes (capabilities as the comma-wrapped string, `unknown` for a missing version).
 */
import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import {
  adminWorkersEndpoint,
  HubError,
  LICENSE_LIST_LIMIT,
  LicenseListQuery,
  licenseListEndpoint,
  LicenseListResponse,
  UpdatePerryBody,
  updatePerryEndpoint,
  type AdminWorkersResponse,
  type UpdatePerryResponse,
} from '@perry-hub/contracts';
import { call, decode } from '@perry-hub/runtime';
import { requireAdmin } from '../auth.js';
import type { BusDeps } from './license.js';

export function adminRoutes(deps: BusDeps & { adminSecret: string }): FastifyPluginAsync {
  return async (plain) => {
    const app = plain.withTypeProvider<TypeBoxTypeProvider>();
    app.get(
      '/api/v1/admin/licenses',
      {
        schema: {
          summary: "Licenses, newest first, with this month's publishes (admin)",
          tags: ['admin'],
          querystring: LicenseListQuery,
          response: { 200: LicenseListResponse },
        },
      },
      async (request): Promise<LicenseListResponse> => {
        requireAdmin(request, deps.adminSecret);
        const limit = request.query.limit === undefined ? LICENSE_LIST_LIMIT.default : Number(request.query.limit);
        if (limit < LICENSE_LIST_LIMIT.min || limit > LICENSE_LIST_LIMIT.max) {
          throw new HubError('BAD_REQUEST', `limit must be ${LICENSE_LIST_LIMIT.min} to ${LICENSE_LIST_LIMIT.max}`);
        }
        const listed = await call(deps.nc, deps.subjects, licenseListEndpoint, {
          limit,
          ...(request.query.tier ? { tier: request.query.tier } : {}),
        });
        return {
          period: listed.period,
          licenses: listed.licenses.map((l) => ({
            license_key: l.licenseKey,
            tier: l.tier,
            github_username: l.githubUsername,
            account_id: l.accountId,
            created_at: l.createdAt === null ? null : new Date(l.createdAt).toISOString(),
            device_bound: l.deviceBound,
            project_bundle_id: l.projectBundleId,
            publishes: l.publishes,
          })),
        };
      },
    );

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
