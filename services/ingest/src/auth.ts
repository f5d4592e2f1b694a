/**
 * Who is calling. Admin and operations routes need `Authorization: Bearer <PERRY_HUB_ADMIN_SECRET>`
 * (or the admin's dashboard session), compared whole and in constant time (the original accepted
 * any header that merely ended with the secret, and let everyone in when none was set).
 */
import type { FastifyRequest } from 'fastify';
import { HubError } from '@perry-hub/contracts';
import { sameSecret } from '@perry-hub/runtime';

/**
 * The token of an `Authorization: Bearer <token>` header, verbatim; without one, the secret a
 * dashboard session cookie holds (set only on the routes that take it, see session.ts).
 */
export function bearerToken(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (typeof header === 'string' && header.startsWith('Bearer ')) return header.slice('Bearer '.length);
  return header === undefined ? request.sessionCredential : undefined;
}

export function requireAdmin(request: FastifyRequest, adminSecret: string): void {
  if (adminSecret === '') {
    throw new HubError('ADMIN_DISABLED', 'Admin routes are disabled: PERRY_HUB_ADMIN_SECRET is not set');
  }
  const token = bearerToken(request);
  if (token === undefined || !sameSecret(token, adminSecret)) {
    throw new HubError('FORBIDDEN', 'Admin authentication required');
  }
}
