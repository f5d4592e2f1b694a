/**
 * The public HTTP API as a Fastify app, built without listening so tests can `inject()`.
 * Validation never coerces or strips: a mistyped or unknown field is a 400, not a silent fix.
 */
import Fastify, { LogController, type FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { HubError } from '@perry-hub/contracts';
import type { NatsConnection } from '@nats-io/nats-core';
import type { Subjects } from '@perry-hub/contracts';
import type { Logger } from '@perry-hub/runtime';
import { statusRoutes } from './routes/status.js';

export interface IngestDeps {
  nc: NatsConnection;
  subjects: Subjects;
  log: Logger;
}

export interface AppOptions {
  requestTimeoutMs: number;
  headersTimeoutMs: number;
}

export type App = FastifyInstance;

export function buildApp(deps: IngestDeps, options: AppOptions) {
  const app = Fastify({
    loggerInstance: deps.log.child({ component: 'http' }) as never,
    logController: new LogController({ disableRequestLogging: true }),
    requestTimeout: options.requestTimeoutMs,
    connectionTimeout: options.requestTimeoutMs,
    keepAliveTimeout: 5_000,
    return503OnClosing: true,
    http: { headersTimeout: options.headersTimeoutMs },
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: false, allErrors: true } },
  }).withTypeProvider<TypeBoxTypeProvider>();

  app.setErrorHandler((err, request, reply) => {
    if (err instanceof HubError) return reply.status(err.status).send(err.toEnvelope());
    const e = err as { validation?: unknown; statusCode?: number; message: string; code?: string };
    if (e.validation) {
      return reply.status(400).send({ error: { code: 'BAD_REQUEST', message: e.message } });
    }
    if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) {
      const code =
        e.statusCode === 413 ? 'UPLOAD_TOO_LARGE' : e.statusCode === 415 ? 'UNSUPPORTED_MEDIA_TYPE' : 'BAD_REQUEST';
      return reply.status(e.statusCode).send({ error: { code, message: e.message } });
    }
    request.log.error({ err }, 'request failed');
    return reply.status(500).send({ error: { code: 'INTERNAL_ERROR', message: 'Internal error' } });
  });
  app.setNotFoundHandler((request, reply) =>
    reply
      .status(404)
      .send({ error: { code: 'NOT_FOUND', message: `Route ${request.method} ${request.url} not found` } }),
  );

  void app.register(statusRoutes(deps));
  return app;
}
