/**
 * Who is calling. Admin and dashboard routes need `Authorization: Bearer <PERRY_HUB_ADMIN_SECRET>`,
 * compared whole and in constant time (the original accepted any header that merely ended with
 * the secret, and let everyone in when none was set).
 */
import type { FastifyRequest } from 'fastify';
import { HubError } from '@perry-hub/contracts';
import { sameSecret } from '@perry-hub/runtime';

/** The token of an `Authorization: Bearer <token>` header, verbatim; undefined without one. */
export function bearerToken(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  return typeof header === 'string' && header.startsWith('Bearer ') ? header.slice('Bearer '.length) : undefined;
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
