/**
 * `POST /api/v1/jobs/:id/cancel`: the owner's cancel. Credentials as the other routes take them:
 * the admin secret or an account's API token as `Authorization: Bearer …`, or the submitting
 * license as `{"license_key":"…"}` in a JSON body. A stranger, and a job that does not exist,
 * both get 404 JOB_NOT_FOUND.
 */
import type { FastifyPluginAsync } from 'fastify';
import { CancelBody, type BuildCancelled } from '@perry-hub/contracts';
import { decode, sameSecret } from '@perry-hub/runtime';
import { bearerToken } from '../auth.js';
import { cancelBuild, type CancelAuth } from '../cancel.js';
import type { BusDeps } from './license.js';

export function jobRoutes(deps: BusDeps & { adminSecret: string }): FastifyPluginAsync {
  return async (app) => {
    app.post('/api/v1/jobs/:id/cancel', async (request): Promise<BuildCancelled> => {
      const { id } = request.params as { id: string };
      const body = decode(CancelBody, request.body ?? {}, 'request body');
      const token = bearerToken(request);
      let auth: CancelAuth;
      if (token !== undefined && deps.adminSecret !== '' && sameSecret(token, deps.adminSecret))
        auth = { kind: 'admin' };
      else if (token !== undefined) auth = { kind: 'api-token', apiToken: token };
      else if (body.license_key !== undefined) auth = { kind: 'license', licenseKey: body.license_key };
      else auth = { kind: 'none' };
      return cancelBuild(deps, id, auth);
    });
  };
}
