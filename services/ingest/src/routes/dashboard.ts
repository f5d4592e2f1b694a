/**
 * The web dashboard at `/ui/`: its built files (apps/dashboard, `vite build`) served from disk
 * with a strict Content-Security-Policy (scripts, styles and fetches from this origin only; no
 * inline script, no framing), and its session routes: `POST /ui/session` signs in,
 * `GET /ui/session` says who is signed in, `POST /ui/session/end` signs out (session.ts).
 * The pages read the jobs and operations API with the session cookie; nothing here duplicates it.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { FastifyPluginAsync, FastifyReply } from 'fastify';
import fastifyStatic from '@fastify/static';
import Type from 'typebox';
import {
  HubError,
  SessionRequest,
  SessionResponse,
  SessionState,
  type SessionResponse as SessionResponseT,
  type SessionState as SessionStateT,
} from '@perry-hub/contracts';
import { decode, type SealKey } from '@perry-hub/runtime';
import { identifyToken } from '../caller.js';
import {
  SESSION_COOKIE,
  fromOwnPages,
  openSession,
  refuseCrossSite,
  sealSession,
  sessionCookieOf,
  type SessionKind,
} from '../session.js';
import type { BusDeps } from './license.js';

export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "font-src 'self'",
  "manifest-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

export interface DashboardDeps extends BusDeps {
  adminSecret: string;
  sessionKeys: readonly SealKey[];
  sessionSecs: number;
  /** The built dashboard ('' = the @perry-hub/dashboard package's dist/). */
  dashboardDir: string;
}

/** Where the built dashboard is: the configured directory, or the workspace package's dist/. */
export function dashboardRoot(configured: string): string | undefined {
  if (configured !== '') return configured;
  try {
    const pkg = createRequire(import.meta.url).resolve('@perry-hub/dashboard/package.json');
    return join(dirname(pkg), 'dist');
  } catch {
    return undefined;
  }
}

const ErrorEnvelope = Type.Object({ error: Type.Object({ code: Type.String(), message: Type.String() }) });

function securityHeaders(reply: FastifyReply): void {
  reply.header('content-security-policy', CONTENT_SECURITY_POLICY);
  reply.header('x-content-type-options', 'nosniff');
  reply.header('referrer-policy', 'no-referrer');
  reply.header('x-frame-options', 'DENY');
  reply.header('cross-origin-opener-policy', 'same-origin');
  reply.header('cross-origin-resource-policy', 'same-origin');
}

export function dashboardRoutes(deps: DashboardDeps): FastifyPluginAsync {
  return async (app) => {
    app.addHook('onSend', async (request, reply) => {
      if (request.url === '/ui' || request.url.startsWith('/ui/')) securityHeaders(reply);
    });

    const root = dashboardRoot(deps.dashboardDir);
    if (root !== undefined && existsSync(join(root, 'index.html'))) {
      await app.register(fastifyStatic, {
        root,
        prefix: '/ui/',
        index: 'index.html',
        redirect: true,
        wildcard: true,
        schemaHide: true,
        decorateReply: false,
        // Hashed asset names never change content; the page itself is checked on every load.
        setHeaders: (res, path) => {
          res.setHeader(
            'cache-control',
            path.includes(`${join(root, 'assets')}`) ? 'public, max-age=31536000, immutable' : 'no-cache',
          );
        },
      });
    } else {
      app.get('/ui/*', { schema: { hide: true } }, async (_request, reply) =>
        reply
          .status(503)
          .type('text/plain; charset=utf-8')
          .send('The dashboard is not built: run `npm run build` (or set PERRY_HUB_DASHBOARD_DIR).\n'),
      );
    }
    app.get('/ui', { schema: { hide: true } }, async (_request, reply) => reply.redirect('/ui/', 302));

    app.post(
      '/ui/session',
      {
        schema: {
          summary:
            'Sign in to the dashboard with the admin secret, an API token or a license key: sets the session cookie',
          tags: ['dashboard'],
          body: SessionRequest,
          response: { 200: SessionResponse, 401: ErrorEnvelope, 403: ErrorEnvelope, 429: ErrorEnvelope },
        },
      },
      async (request, reply): Promise<SessionResponseT> => {
        if (!fromOwnPages(request)) throw refuseCrossSite();
        const { secret } = decode(SessionRequest, request.body, 'request body');
        if (deps.sessionKeys.length === 0) {
          throw new HubError('SERVICE_UNAVAILABLE', 'Dashboard sign-in needs PERRY_HUB_CREDENTIALS_KEY to be set');
        }
        let kind: SessionKind;
        try {
          const caller = await identifyToken(deps, secret);
          // Tools are known by their NATS subject, never by a presented secret.
          if (caller.kind === 'tool') throw new HubError('AUTH_INVALID', 'Not a dashboard credential');
          kind = caller.kind;
        } catch (err) {
          if (err instanceof HubError && (err.code === 'LICENSE_INVALID' || err.code === 'AUTH_INVALID')) {
            // Counted by the failed-authentication limit like any wrong credential (abuse/hooks.ts).
            throw new HubError('AUTH_INVALID', 'Not a valid admin secret, API token or license key', { cause: err });
          }
          throw err;
        }
        const expiresAt = Date.now() + deps.sessionSecs * 1000;
        void reply.setCookie(SESSION_COOKIE, sealSession(deps.sessionKeys, { credential: secret, kind, expiresAt }), {
          path: '/',
          httpOnly: true,
          sameSite: 'strict',
          secure: request.protocol === 'https',
          maxAge: deps.sessionSecs,
        });
        reply.header('cache-control', 'no-store');
        return { kind, expires_at: new Date(expiresAt).toISOString() };
      },
    );

    app.get(
      '/ui/session',
      {
        schema: {
          summary: 'Whether this browser is signed in to the dashboard, and as whom (admin, account or license)',
          tags: ['dashboard'],
          response: { 200: SessionState },
        },
      },
      async (request, reply): Promise<SessionStateT> => {
        const value = sessionCookieOf(request);
        const session = value === undefined ? undefined : openSession(deps.sessionKeys, value);
        reply.header('cache-control', 'no-store');
        if (!session) return { signed_in: false, kind: null, expires_at: null };
        return { signed_in: true, kind: session.kind, expires_at: new Date(session.expiresAt).toISOString() };
      },
    );

    app.post(
      '/ui/session/end',
      {
        schema: {
          summary: 'Sign out of the dashboard: clears the session cookie',
          tags: ['dashboard'],
          response: { 204: Type.Null(), 403: ErrorEnvelope },
        },
      },
      async (request, reply) => {
        if (!fromOwnPages(request)) throw refuseCrossSite();
        void reply.clearCookie(SESSION_COOKIE, {
          path: '/',
          httpOnly: true,
          sameSite: 'strict',
          secure: request.protocol === 'https',
        });
        return reply.status(204).send();
      },
    );
  };
}
