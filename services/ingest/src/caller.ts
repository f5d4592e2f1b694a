/**
 * Who is reading the jobs API: the admin (every job), or a submitter (its own jobs only): an
 * account by its API token, a license by its key. All as `Authorization: Bearer <secret>`; the
 * admin secret is compared in constant time, a 64-hex-digit token is an API token (as the
 * license service makes them), anything else a license key.
 */
import type { FastifyRequest } from 'fastify';
import { HubError, accountGetEndpoint, verifyLicenseEndpoint } from '@perry-hub/contracts';
import { call, sameSecret } from '@perry-hub/runtime';
import { adminDisabled, bearerToken } from './auth.js';
import type { BusDeps } from './routes/license.js';

export type Caller =
  | { readonly kind: 'admin' }
  | { readonly kind: 'account'; readonly accountId: string }
  | { readonly kind: 'license'; readonly licenseKey: string }
  /** A tool identity over NATS: the jobs it submitted itself, whatever license they ran under. */
  | { readonly kind: 'tool'; readonly tool: string };

const API_TOKEN = /^[0-9a-f]{64}$/;

export async function identify(deps: BusDeps & { adminSecret: string }, request: FastifyRequest): Promise<Caller> {
  const token = bearerToken(request);
  if (token === undefined || token === '') {
    throw new HubError(
      'AUTH_REQUIRED',
      'Send the admin secret, an API token or a license key as Authorization: Bearer',
    );
  }
  return identifyToken(deps, token);
}

/** Who a presented secret is (the dashboard's sign-in takes it from a form, not a header). */
export async function identifyToken(deps: BusDeps & { adminSecret: string }, token: string): Promise<Caller> {
  if (deps.adminSecret !== '' && sameSecret(token, deps.adminSecret)) return { kind: 'admin' };
  if (API_TOKEN.test(token)) return accountCaller(deps, token);
  const verdict = await call(deps.nc, deps.subjects, verifyLicenseEndpoint, { licenseKey: token });
  if (!verdict.valid) throw new HubError('LICENSE_INVALID', 'Invalid license key');
  return { kind: 'license', licenseKey: token };
}

/** The account of an API token; an unknown token is a 401 AUTH_INVALID, counted as a failed authentication. */
export async function accountCaller(deps: BusDeps, apiToken: string): Promise<Caller & { kind: 'account' }> {
  const account = await call(deps.nc, deps.subjects, accountGetEndpoint, { apiToken });
  return { kind: 'account', accountId: account.id };
}

/**
 * The operations routes (`/api/v1/workers`, `/queue`, `/vms`): like the jobs API, no credential
 * is a 401 AUTH_REQUIRED, an unknown one a 401 AUTH_INVALID or LICENSE_INVALID (whose message
 * names the admin secret, the credential these routes want), and a known
 * license or token a 403 FORBIDDEN. (The original's `/api/v1/admin/*` routes answer every failure
 * with its 403, see auth.ts.)
 */
export async function requireAdminIdentity(
  deps: BusDeps & { adminSecret: string },
  request: FastifyRequest,
): Promise<void> {
  if (deps.adminSecret === '') throw adminDisabled();
  let caller: Caller;
  try {
    caller = await identify(deps, request);
  } catch (err) {
    // Here the secret was most likely meant as the admin's: say so rather than "license key".
    if (err instanceof HubError && err.code === 'LICENSE_INVALID') {
      throw new HubError('LICENSE_INVALID', 'Not the admin secret, nor a valid license key');
    }
    throw err;
  }
  requireAdminCaller(caller);
}

export function requireAdminCaller(caller: Caller): void {
  if (caller.kind !== 'admin') throw new HubError('FORBIDDEN', 'Admin authentication required');
}
