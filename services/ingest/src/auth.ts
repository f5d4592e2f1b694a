/**
 * Who is calling. Admin and operations routes need `Authorization: Bearer <PERRY_HUB_ADMIN_SECRET>`
 * (or the admin's dashboard session), compared whole and in constant time (the original accepted
 * any header that merely ended with the secret, and let everyone in when none was set). The
 * operations routes tell who failed how (caller.ts, `requireAdminIdentity`).
 */
import type { FastifyRequest } from 'fastify';
import { HubError } from '@perry-hub/contracts';
import { sameSecret } from '@perry-hub/runtime';
import { notAGuess } from './abuse/hooks.js';

/**
 * The token of an `Authorization: Bearer <token>` header, verbatim; without one, the secret a
 * dashboard session cookie holds (set only on the routes that take it, see session.ts).
 */
export function bearerToken(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (typeof header === 'string' && header.startsWith('Bearer ')) return header.slice('Bearer '.length);
  return header === undefined ? request.sessionCredential : undefined;
}

export const adminDisabled = () =>
  new HubError('ADMIN_DISABLED', 'Admin routes are disabled: PERRY_HUB_ADMIN_SECRET is not set');

/**
 * The original's admin routes (`/api/v1/admin/*`) and the account and tool administration: every
 * failure is its 403 FORBIDDEN "Admin authentication required" (reference 1.2 #2), which clients
 * rely on. A wrong secret counts as a failed authentication; no credential at all is no guess,
 * as everywhere else (caller.ts answers it 401 AUTH_REQUIRED on the newer routes).
 */
export function requireAdmin(request: FastifyRequest, adminSecret: string): void {
  if (adminSecret === '') throw adminDisabled();
  const token = bearerToken(request);
  if (token === undefined) throw notAGuess(new HubError('FORBIDDEN', 'Admin authentication required'));
  if (!sameSecret(token, adminSecret)) throw new HubError('FORBIDDEN', 'Admin authentication required');
}
