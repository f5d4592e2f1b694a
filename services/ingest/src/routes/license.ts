/** `POST /api/v1/license/register` and `/verify` (reference 1.2 #4, #5), answered by the license service. */
import type { FastifyPluginAsync } from 'fastify';
import type { Static } from 'typebox';
import {
  HubError,
  RegisterBody,
  registerLicenseEndpoint,
  VerifyBody,
  verifyLicenseEndpoint,
  type RegisterResponse,
  type Subjects,
  type VerifyResponse,
} from '@perry-hub/contracts';
import { call, decode, type NatsConnection } from '@perry-hub/runtime';
import { noteAuthFailure, type AbuseControls } from '../abuse/hooks.js';

export interface BusDeps {
  nc: NatsConnection;
  subjects: Subjects;
}

export function licenseRoutes(deps: BusDeps & { abuse: AbuseControls }): FastifyPluginAsync {
  return async (app) => {
    // The CLI posts `{}`; a body is optional. Unknown or mistyped fields are refused.
    app.post('/api/v1/license/register', async (request): Promise<Static<typeof RegisterResponse>> => {
      const body = decode(RegisterBody, request.body ?? {}, 'request body');
      const license = await call(deps.nc, deps.subjects, registerLicenseEndpoint, {
        githubUsername: body.github_username ?? null,
      });
      return { license_key: license.licenseKey, tier: license.tier, platforms: license.platforms };
    });

    app.post('/api/v1/license/verify', async (request): Promise<Static<typeof VerifyResponse>> => {
      if (!request.body) throw new HubError('BAD_REQUEST', 'Invalid JSON body');
      const body = decode(VerifyBody, request.body, 'request body');
      const verdict = await call(deps.nc, deps.subjects, verifyLicenseEndpoint, { licenseKey: body.license_key ?? '' });
      // An unknown key answers 200 {"valid":false} as originally, but it is a guess like any other.
      if (!verdict.valid) await noteAuthFailure(deps.abuse, request, 'LICENSE_INVALID');
      return verdict;
    });
  };
}
