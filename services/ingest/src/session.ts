/**
 * Dashboard sessions. Signing in (`POST /ui/session`) with the admin secret, an API token or a
 * license key sets one cookie: httpOnly (no script reads it), `SameSite=Strict` (no other site's
 * page sends it), `Secure` when the request came over TLS (directly, or through a trusted proxy's
 * `X-Forwarded-Proto`: Fastify's `request.protocol` honours it only with PERRY_HUB_TRUST_PROXY),
 * expiring after PERRY_HUB_SESSION_SECS. Its value is the presented secret and its expiry sealed
 * (AES-256-GCM) with a key derived from PERRY_HUB_CREDENTIALS_KEY: the browser holds ciphertext
 * only, every ingest instance of the hub opens it (no session store), and each request is
 * authorized again exactly as with `Authorization: Bearer` (a revoked license stops working).
 *
 * The cookie counts only on the routes the dashboard uses (COOKIE_ROUTES), only without an
 * Authorization header (other clients are unchanged), and a state-changing request made with it
 * must come from the hub's own pages: `Sec-Fetch-Site: same-origin`, or without that header an
 * `Origin` equal to the hub's. That, with SameSite=Strict, keeps cross-site requests out (CSRF).
 */
import { hkdfSync } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { HubError } from '@perry-hub/contracts';
import { openSealed, parseSealKeys, seal, type SealKey } from '@perry-hub/runtime';
import { notAGuess } from './abuse/hooks.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The secret of a valid dashboard session cookie, on the routes that take one. */
    sessionCredential: string | undefined;
  }
}

export const SESSION_COOKIE = 'perry_hub_session';
const CONTEXT = 'perry-hub dashboard session v1';

/** The API routes a dashboard session may call (besides its own /ui/session routes). */
export const COOKIE_ROUTES: ReadonlySet<string> = new Set([
  '/api/v1/jobs',
  '/api/v1/jobs/counts',
  '/api/v1/jobs/:id',
  '/api/v1/jobs/:id/events',
  '/api/v1/jobs/:id/cancel',
  '/api/v1/workers',
  '/api/v1/queue',
  '/api/v1/vms',
  '/ui/session',
  '/ui/session/end',
]);

export type SessionKind = 'admin' | 'account' | 'license';

export interface SessionValue {
  credential: string;
  kind: SessionKind;
  expiresAt: number;
}

/**
 * Keys for session cookies, one per credentials key (the first seals, all open: a key rotation
 * keeps sessions), derived with HKDF so a session cookie never shares a key with sealed signing
 * credentials. Empty when no credentials key is configured: sign-in is then refused.
 */
export function sessionKeys(credentialKeys: readonly SealKey[]): SealKey[] {
  if (credentialKeys.length === 0) return [];
  const derived = credentialKeys.map((k) =>
    Buffer.from(hkdfSync('sha256', k.key, Buffer.alloc(0), CONTEXT, 32)).toString('base64'),
  );
  return parseSealKeys(derived.join(','));
}

export function sealSession(keys: readonly SealKey[], value: SessionValue): string {
  const first = keys[0];
  if (!first) throw new HubError('SERVICE_UNAVAILABLE', 'Dashboard sign-in needs PERRY_HUB_CREDENTIALS_KEY');
  const plain = JSON.stringify({ c: value.credential, k: value.kind, e: value.expiresAt });
  return seal(first, plain, CONTEXT).toString('base64url');
}

/** The session in a cookie value; undefined when it does not open, is malformed or has expired. */
export function openSession(keys: readonly SealKey[], cookie: string, now = Date.now()): SessionValue | undefined {
  if (keys.length === 0 || cookie === '' || cookie.length > 4096) return undefined;
  try {
    const parsed = JSON.parse(openSealed(keys, Buffer.from(cookie, 'base64url'), CONTEXT).toString('utf8')) as {
      c?: unknown;
      k?: unknown;
      e?: unknown;
    };
    if (typeof parsed.c !== 'string' || typeof parsed.e !== 'number' || parsed.e <= now) return undefined;
    const kind = parsed.k === 'admin' || parsed.k === 'account' || parsed.k === 'license' ? parsed.k : undefined;
    if (!kind) return undefined;
    return { credential: parsed.c, kind, expiresAt: parsed.e };
  } catch {
    return undefined;
  }
}

/**
 * Whether a request comes from the hub's own pages: a browser says so in `Sec-Fetch-Site`; one
 * that does not send it sends `Origin` on every POST, which must then be the hub's own origin.
 */
export function fromOwnPages(request: FastifyRequest): boolean {
  const site = request.headers['sec-fetch-site'];
  if (site !== undefined) return site === 'same-origin';
  const origin = request.headers.origin;
  return typeof origin === 'string' && origin === `${request.protocol}://${request.host}`;
}

/** The session cookie's value, parsed here (the cookie plugin's own hook may run after this one). */
export function sessionCookieOf(request: FastifyRequest): string | undefined {
  const header = request.headers.cookie;
  if (header === undefined) return undefined;
  return request.server.parseCookie(header)[SESSION_COOKIE];
}

const SAFE_METHODS = new Set(['GET', 'HEAD']);

export function refuseCrossSite(): HubError {
  // Not a guessed credential: a cross-site page must not lock its victim's address out.
  return notAGuess(new HubError('FORBIDDEN', 'Cross-site request refused: use the dashboard’s own pages'));
}

/** Reads the session cookie into `request.sessionCredential` on COOKIE_ROUTES (see above). */
export function registerSessionHook(app: FastifyInstance, keys: readonly SealKey[]): void {
  app.decorateRequest('sessionCredential', undefined);
  app.addHook('onRequest', async (request) => {
    const route = request.routeOptions.url;
    if (route === undefined || !COOKIE_ROUTES.has(route) || request.headers.authorization !== undefined) return;
    const cookie = sessionCookieOf(request);
    if (cookie === undefined) return;
    const session = openSession(keys, cookie);
    if (!session) return;
    if (!SAFE_METHODS.has(request.method) && !fromOwnPages(request)) throw refuseCrossSite();
    request.sessionCredential = session.credential;
  });
}
