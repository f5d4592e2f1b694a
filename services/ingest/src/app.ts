/**
 * The public HTTP API as a Fastify app, built without listening so tests can `inject()`.
 * Validation never coerces or strips: a mistyped or unknown field is a 400, not a silent fix.
 * Every error leaves in the original's envelope `{"error":{"code","message"}}`.
 */
import cookie from '@fastify/cookie';
import Fastify, { LogController, type FastifyError, type FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { HubError } from '@perry-hub/contracts';
import type { NatsConnection } from '@nats-io/nats-core';
import type { Subjects } from '@perry-hub/contracts';
import type { Pool } from '@perry-hub/db';
import type { AddressList, BlobStore, Logger, ProcessOps, SealKey } from '@perry-hub/runtime';
import { statusRoutes } from './routes/status.js';
import { buildRoutes } from './routes/build.js';
import { licenseRoutes } from './routes/license.js';
import { accountRoutes } from './routes/account.js';
import { adminRoutes } from './routes/admin.js';
import { jobRoutes } from './routes/jobs.js';
import { operateRoutes } from './routes/operate.js';
import { opsRoutes } from './routes/ops.js';
import { registerDocs } from './routes/docs.js';
import { TransferGrants, transferRoutes } from './routes/transfer.js';
import { dashboardRoutes } from './routes/dashboard.js';
import { registerSessionHook, sessionKeys } from './session.js';
import { toolRoutes } from './routes/tools.js';
import { ToolStore } from './tools/store.js';
import { NO_CALLBACK_EXCEPTIONS, type CallbackPolicy } from './tools/callback-url.js';
import { noteAuthFailure, registerAbuseHooks, type AbuseControls } from './abuse/hooks.js';
import { retryAfterSecs } from './abuse/retry-after.js';
import { lingerAfterAnswer } from './abuse/linger.js';

export interface IngestDeps {
  nc: NatsConnection;
  subjects: Subjects;
  log: Logger;
  db: Pool;
  blobs: BlobStore;
  /** Empty when PERRY_HUB_CREDENTIALS_KEY is unset: builds are then refused. */
  sealKeys: readonly SealKey[];
  subjectPrefix: string;
  /** Metrics and readiness of this process: served at /metrics, /healthz and /readyz. */
  ops: ProcessOps;
  /** See IntakeDeps. */
  resubmitWindowMs: number;
  reservationHoldMs: number;
  /** Tool identities (default: in `db`). */
  tools?: ToolStore;
  /** What a callback_url may reach (default: public addresses only). */
  callbackPolicy?: CallbackPolicy;
  /** PERRY_HUB_PUBLIC_URL: the artifacts of a job's status carry their links. */
  publicUrl?: string;
  instanceId?: string;
}

export interface AppOptions {
  requestTimeoutMs: number;
  headersTimeoutMs: number;
  idleTimeoutMs: number;
  keepAliveTimeoutMs: number;
  adminSecret: string;
  maxFieldBytes: number;
  maxArtifactBytes: number;
  /** Proxies whose X-Forwarded-For (and -Proto, -Host) count; empty trusts none. */
  trustProxy: AddressList;
  abuse: AbuseControls;
  /** How long a dashboard session lasts. */
  sessionSecs: number;
  /** The built dashboard; '' = the @perry-hub/dashboard package's dist/. */
  dashboardDir: string;
}

export type App = FastifyInstance;

/** A JSON body the parser refused (bad syntax, a `__proto__` key, an empty body). */
const JSON_PARSE_ERRORS = new Set(['FST_ERR_CTP_INVALID_JSON_BODY', 'FST_ERR_CTP_EMPTY_JSON_BODY']);

function envelope(err: FastifyError): { status: number; error: HubError } {
  if (err instanceof HubError) return { status: err.status, error: err };
  if (err.validation) return { status: 400, error: new HubError('BAD_REQUEST', err.message) };
  const status = err.statusCode ?? 500;
  if (status >= 400 && status < 500) {
    if (JSON_PARSE_ERRORS.has(err.code) || err instanceof SyntaxError) {
      return { status: 400, error: new HubError('BAD_REQUEST', 'Invalid JSON body') };
    }
    const code = status === 413 ? 'UPLOAD_TOO_LARGE' : status === 415 ? 'UNSUPPORTED_MEDIA_TYPE' : 'BAD_REQUEST';
    return { status, error: new HubError(code, err.message) };
  }
  return { status: 500, error: new HubError('INTERNAL_ERROR', 'Internal error') };
}

export function buildApp(deps: IngestDeps, options: AppOptions) {
  const app = Fastify({
    loggerInstance: deps.log.child({ component: 'http' }) as never,
    logController: new LogController({ disableRequestLogging: true }),
    requestTimeout: options.requestTimeoutMs,
    connectionTimeout: options.idleTimeoutMs,
    keepAliveTimeout: options.keepAliveTimeoutMs,
    // A function, so that the list parsed with the configuration is the one matched.
    trustProxy: options.trustProxy.size === 0 ? false : (address: string) => options.trustProxy.includes(address),
    return503OnClosing: true,
    // Node checks the headers timeout only this often (default 30 s): a slowloris would outlive it.
    http: { headersTimeout: options.headersTimeoutMs, connectionsCheckingInterval: 1_000 },
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: false, allErrors: true } },
  }).withTypeProvider<TypeBoxTypeProvider>();

  // The access log, at debug: the route pattern, never the URL (a download URL carries its token).
  app.addHook('onResponse', async (request, reply) => {
    if (!deps.log.isLevelEnabled('debug')) return;
    const params = request.params as Record<string, unknown> | undefined;
    const jobId = params?.['jobId'] ?? params?.['id'];
    request.log.debug(
      {
        method: request.method,
        route: request.routeOptions.url ?? '(no route)',
        ...(typeof jobId === 'string' ? { jobId } : {}),
        status: reply.statusCode,
        ms: Math.round(reply.elapsedTime),
        address: request.ip,
      },
      'request',
    );
  });

  app.setErrorHandler(async (err: FastifyError, request, reply) => {
    const { status, error } = envelope(err);
    if (status >= 500 && !(err instanceof HubError)) request.log.error({ err }, 'request failed');
    await noteAuthFailure(options.abuse, request, error.code, err);
    const retryAfter = retryAfterSecs(err);
    if (retryAfter !== undefined) reply.header('retry-after', retryAfter);
    // An answer before the whole body arrived (a 413, a 401 mid-upload): do not read the rest.
    if (!request.raw.complete) {
      reply.header('connection', 'close');
      lingerAfterAnswer(request);
    }
    // A route that failed after choosing its body's type and length (a transfer whose stream
    // broke before the first byte) answers with the JSON envelope, not as that body.
    reply.removeHeader('content-length');
    return reply.status(status).type('application/json; charset=utf-8').send(error.toEnvelope());
  });
  app.setNotFoundHandler((request, reply) =>
    reply
      .status(404)
      .send({ error: { code: 'NOT_FOUND', message: `Route ${request.method} ${request.url} not found` } }),
  );

  // What is served, for the test that the OpenAPI document lists every route.
  const routes: { method: string; url: string; hidden: boolean }[] = [];
  app.addHook('onRoute', (route) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    const hidden = (route.schema as { hide?: boolean } | undefined)?.hide === true;
    for (const method of methods) routes.push({ method: String(method), url: route.url, hidden });
  });
  app.decorate('servedRoutes', routes);
  registerDocs(app as unknown as FastifyInstance);
  registerAbuseHooks(app as unknown as FastifyInstance, options.abuse);
  // Cookies are parsed on demand (session.ts); the plugin serializes Set-Cookie.
  void app.register(cookie, { hook: false });
  const keys = sessionKeys(deps.sealKeys);
  registerSessionHook(app as unknown as FastifyInstance, keys);
  void app.register(opsRoutes(deps.ops));
  const bus = { nc: deps.nc, subjects: deps.subjects };
  void app.register(statusRoutes(deps));
  void app.register(
    buildRoutes(
      { ...deps, limits: options.abuse.limits },
      { maxFieldBytes: options.maxFieldBytes, budget: options.abuse.budget },
    ),
  );
  void app.register(licenseRoutes({ ...bus, abuse: options.abuse }));
  void app.register(accountRoutes({ ...bus, adminSecret: options.adminSecret }));
  void app.register(adminRoutes({ ...bus, adminSecret: options.adminSecret }));
  void app.register(
    jobRoutes({
      ...bus,
      adminSecret: options.adminSecret,
      db: deps.db,
      log: deps.log,
      subjectPrefix: deps.subjectPrefix,
      publicUrl: deps.publicUrl,
    }),
  );
  void app.register(operateRoutes({ ...bus, adminSecret: options.adminSecret }));
  void app.register(
    dashboardRoutes({
      ...bus,
      adminSecret: options.adminSecret,
      sessionKeys: keys,
      sessionSecs: options.sessionSecs,
      dashboardDir: options.dashboardDir,
    }),
  );
  void app.register(
    toolRoutes({
      ...bus,
      adminSecret: options.adminSecret,
      tools: deps.tools ?? new ToolStore(deps.db),
      callbackPolicy: deps.callbackPolicy ?? NO_CALLBACK_EXCEPTIONS,
    }),
  );
  void app.register(
    transferRoutes({
      ...bus,
      log: deps.log,
      blobs: deps.blobs,
      maxArtifactBytes: options.maxArtifactBytes,
      metrics: deps.ops.metrics,
      grants: new TransferGrants(),
    }),
  );
  return app;
}
