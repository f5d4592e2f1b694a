/**
 * Where the abuse limits meet the routes: before any route that checks a credential, an address
 * over its failed-authentication limit gets 429 (before its body is read); registrations and
 * submissions are counted per address as they arrive; the error handler counts failures.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ErrorCode } from '@perry-hub/contracts';
import { addressKey } from './address.js';
import type { AbuseLimits } from './limits.js';
import type { PreauthBudget } from './budget.js';
import { guardBodyRate, type BodyRateOptions } from './slow-body.js';

export interface AbuseControls {
  /** Undefined: no counted limits (unit tests of the app without a bus). */
  limits: AbuseLimits | undefined;
  budget: PreauthBudget;
  bodyRate: BodyRateOptions;
}

/** Routes that take a credential: guesses there count, and a blocked address is refused. */
const AUTHENTICATED_ROUTES = new Set([
  '/api/v1/build',
  '/api/v1/license/verify',
  '/api/v1/account',
  '/api/v1/account/create',
  '/api/v1/account/update',
  '/api/v1/admin/workers',
  '/api/v1/admin/licenses',
  '/api/v1/admin/update-perry',
  '/api/v1/tarball/:jobId',
  '/api/v1/artifact/upload/:jobId',
  '/api/v1/jobs/:id/cancel',
  '/api/v1/jobs',
  '/api/v1/jobs/counts',
  '/api/v1/jobs/:id',
  '/api/v1/jobs/:id/events',
  '/api/v1/workers',
  '/api/v1/queue',
  '/api/v1/vms',
  '/ui/session',
]);

/** A wrong license key, API token, admin secret or worker job token. */
const WRONG_CREDENTIAL: ReadonlySet<ErrorCode> = new Set(['LICENSE_INVALID', 'AUTH_INVALID', 'FORBIDDEN']);

/**
 * Where "not found" is the answer to a wrong credential: a cancel by someone who does not own the
 * job is answered like an unknown job, so guessing license keys against a job id counts.
 */
const NOT_YOURS_ROUTES = new Set(['/api/v1/jobs/:id/cancel', '/api/v1/jobs/:id', '/api/v1/jobs/:id/events']);

export function clientAddress(request: FastifyRequest): string {
  return addressKey(request.ip);
}

export function registerAbuseHooks(app: FastifyInstance, abuse: AbuseControls): void {
  guardBodyRate(app, abuse.bodyRate);
  const limits = abuse.limits;
  if (!limits) return;
  app.addHook('onRequest', async (request) => {
    const route = request.routeOptions.url;
    if (route === undefined) return;
    const address = clientAddress(request);
    if (AUTHENTICATED_ROUTES.has(route)) await limits.assertMayAuthenticate(address);
    if (route === '/api/v1/license/register') await limits.countRegistration(address);
    if (route === '/api/v1/build') await limits.countSubmissionFrom(address);
  });
}

const NOT_GUESSES = new WeakSet<object>();

/** Marks a refusal that names a wrong credential on the wire but is no guess (a stale job token). */
export function notAGuess<E extends object>(err: E): E {
  NOT_GUESSES.add(err);
  return err;
}

/** Count a failed authentication of this request, if `code` says it was one. */
export async function noteAuthFailure(
  abuse: AbuseControls,
  request: FastifyRequest,
  code: ErrorCode,
  err?: unknown,
): Promise<void> {
  const route = request.routeOptions.url;
  if (!abuse.limits || route === undefined || !AUTHENTICATED_ROUTES.has(route)) return;
  if (typeof err === 'object' && err !== null && NOT_GUESSES.has(err)) return;
  if (!WRONG_CREDENTIAL.has(code) && !(code === 'JOB_NOT_FOUND' && NOT_YOURS_ROUTES.has(route))) return;
  await abuse.limits.recordAuthFailure(clientAddress(request));
}
