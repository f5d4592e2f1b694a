/**
 * Tool identities, for operators (admin secret): `perry-hub tools add|list|rotate|remove`. Adding
 * and rotating answer the NATS seed and the webhook secret once; the hub keeps neither the seed
 * nor a way to show it again. A new or rotated key works once the nats-server has been given the
 * tool users again (README "For tools": the all-in-one does it itself; a deployment reloads).
 */
import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Type from 'typebox';
import {
  HubError,
  TOOL_NAME_PATTERN,
  ToolCreateBody,
  ToolCredentials,
  ToolList,
  verifyLicenseEndpoint,
} from '@perry-hub/contracts';
import { call } from '@perry-hub/runtime';
import { requireAdmin } from '../auth.js';
import { listed, type ToolStore } from '../tools/store.js';
import { checkCallbackUrl, type CallbackPolicy } from '../tools/callback-url.js';
import type { BusDeps } from './license.js';

const NameParams = Type.Object({ name: Type.String({ pattern: TOOL_NAME_PATTERN }) }, { additionalProperties: false });

export interface ToolRouteDeps extends BusDeps {
  adminSecret: string;
  tools: ToolStore;
  callbackPolicy: CallbackPolicy;
}

export function toolRoutes(deps: ToolRouteDeps): FastifyPluginAsync {
  return async (plain) => {
    const app = plain.withTypeProvider<TypeBoxTypeProvider>();
    app.post(
      '/api/v1/admin/tools',
      {
        schema: {
          summary: 'Create a tool identity bound to a license or an account (admin); answers its secrets once',
          tags: ['admin'],
          body: ToolCreateBody,
          response: { 200: ToolCredentials },
        },
      },
      async (request) => {
        requireAdmin(request, deps.adminSecret);
        const body = request.body;
        if ((body.license_key === undefined) === (body.account_id === undefined)) {
          throw new HubError('BAD_REQUEST', "Give exactly one of 'license_key' and 'account_id'");
        }
        if (body.license_key !== undefined) {
          const verdict = await call(deps.nc, deps.subjects, verifyLicenseEndpoint, { licenseKey: body.license_key });
          if (!verdict.valid) throw new HubError('LICENSE_INVALID', 'Invalid license key');
        }
        if (body.account_id !== undefined && (await deps.tools.accountToken(body.account_id)) === undefined) {
          throw new HubError('NOT_FOUND', `No account ${body.account_id}`);
        }
        if (body.callback_url !== undefined) await checkCallbackUrl(body.callback_url, deps.callbackPolicy);
        return deps.tools.create(
          {
            name: body.name,
            licenseKey: body.license_key ?? null,
            accountId: body.account_id ?? null,
            callbackUrl: body.callback_url ?? null,
          },
          Date.now(),
        );
      },
    );

    app.get(
      '/api/v1/admin/tools',
      {
        schema: { summary: 'Tool identities (admin); public keys only', tags: ['admin'], response: { 200: ToolList } },
      },
      async (request) => {
        requireAdmin(request, deps.adminSecret);
        return { tools: (await deps.tools.list()).map(listed) };
      },
    );

    app.post(
      '/api/v1/admin/tools/:name/rotate',
      {
        schema: {
          summary: 'New NATS key and webhook secret for a tool (admin); the old ones stop working',
          tags: ['admin'],
          params: NameParams,
          response: { 200: ToolCredentials },
        },
      },
      async (request) => {
        requireAdmin(request, deps.adminSecret);
        return deps.tools.rotate(request.params.name, Date.now());
      },
    );

    app.delete(
      '/api/v1/admin/tools/:name',
      {
        schema: {
          summary: 'Remove a tool identity (admin); its jobs stay',
          tags: ['admin'],
          params: NameParams,
          response: { 200: Type.Object({ name: Type.String(), removed: Type.Literal(true) }) },
        },
      },
      async (request) => {
        requireAdmin(request, deps.adminSecret);
        await deps.tools.remove(request.params.name);
        return { name: request.params.name, removed: true as const };
      },
    );
  };
}
