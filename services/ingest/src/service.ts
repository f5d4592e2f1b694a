/**
 * The ingest service: the public HTTP API and the NATS-native submission. Stopping it stops
 * intake first (Fastify answers 503 while closing and waits for in-flight requests).
 */
import { topologyNames } from '@perry-hub/contracts';
import type { Pool } from '@perry-hub/db';
import { BlobStore, defineService } from '@perry-hub/runtime';
import type { AddressInfo } from 'node:net';
import { buildApp } from './app.js';
import { IngestConfig } from './config.js';
import { cancelOverNats } from './cancel.js';
import { serveRequests, serveSubmissions } from './submit.js';
import { serveToolApi } from './tools/api.js';
import { CallbackSender } from './callbacks/deliver.js';
import { consumeDone } from './callbacks/queue.js';
import { ToolStore } from './tools/store.js';
import { WindowCounters } from './abuse/counters.js';
import { AbuseLimits } from './abuse/limits.js';
import { PreauthBudget } from './abuse/budget.js';
import { PositionNotices } from './positions.js';

export { IngestConfig } from './config.js';
export { buildApp } from './app.js';

const RESERVATION_MARGIN_MS = 10_000;

export const ingest = defineService({
  name: 'ingest',
  config: IngestConfig,
  needsDb: true,
  start: async (deps, config) => {
    const { sealKeys } = config;
    if (sealKeys.length === 0) deps.log.warn('PERRY_HUB_CREDENTIALS_KEY is not set: build submissions are refused');
    const names = topologyNames(config.subjectPrefix);
    const blobs = await BlobStore.open(deps.nc, names.blobsBucket);
    const limits = new AbuseLimits(await WindowCounters.open(deps.nc, names.limitsBucket), config, deps.log);
    const tools = new ToolStore(deps.db as Pool);
    const callbackPolicy = { allowedAddresses: config.callbackAllowedAddresses };
    const positions = new PositionNotices(deps.nc, deps.subjects, deps.instanceId, deps.log);
    const intake = {
      ...deps,
      positions,
      tools,
      callbackPolicy,
      publicUrl: config.publicUrl,
      db: deps.db as Pool,
      blobs,
      sealKeys,
      limits,
      subjectPrefix: config.subjectPrefix,
      ops: deps.ops,
      metrics: deps.metrics,
      resubmitWindowMs: config.resubmitWindowSecs * 1000,
      // A request may run this long; its reservation outlives it a little (clocks, the last insert).
      reservationHoldMs: config.requestTimeoutMs + RESERVATION_MARGIN_MS,
    };

    if (config.adminSecret === '') deps.log.warn('PERRY_HUB_ADMIN_SECRET is not set: admin routes are disabled');
    const app = buildApp(
      { ...intake, tools, callbackPolicy },
      {
        ...config,
        abuse: {
          limits,
          budget: new PreauthBudget({
            perAddressBytes: config.preauthBytesPerAddress,
            totalBytes: config.preauthBytesTotal,
          }),
          bodyRate: { minBytesPerSec: config.minBodyBytesPerSec, windowMs: config.minBodyWindowMs },
        },
      },
    );
    await app.listen({ port: config.httpPort, host: config.httpHost });
    const submissions = serveSubmissions(intake);
    const cancels = serveRequests(intake, deps.subjects.buildsCancel, (payload) => cancelOverNats(intake, payload));
    const toolApi = serveToolApi({ ...intake, tools, callbackPolicy });
    const sender = new CallbackSender({
      db: intake.db,
      blobs,
      log: deps.log.child({ component: 'callbacks' }),
      policy: callbackPolicy,
      config: {
        maxAttempts: config.callbackMaxAttempts,
        backoffBaseMs: config.callbackBackoffBaseMs,
        backoffMaxMs: config.callbackBackoffMaxMs,
        timeoutMs: config.callbackTimeoutMs,
      },
    });
    const stopQueueing = await consumeDone({
      nc: deps.nc,
      subjects: deps.subjects,
      subjectPrefix: config.subjectPrefix,
      db: intake.db,
      blobs,
      log: deps.log.child({ component: 'callbacks' }),
      onQueued: () => sender.wake(),
    });
    // Whatever a previous run left queued (or claimed, and died with) is looked at now.
    sender.wake();
    deps.ready('http', () => (app.server.listening ? 'ok' : 'not listening'));
    const address = app.server.address() as AddressInfo;
    deps.log.info({ port: address.port, host: config.httpHost }, 'HTTP API listening');
    return {
      info: {
        httpPort: address.port,
        server: app.server,
        /** Every route the app serves, as registered (for the OpenAPI completeness test). */
        routes: (app as unknown as { servedRoutes: { method: string; url: string; hidden: boolean }[] }).servedRoutes,
      },
      stop: async () => {
        submissions.unsubscribe();
        cancels.unsubscribe();
        toolApi.unsubscribe();
        await stopQueueing();
        await sender.stop();
        await app.close();
        positions.stop();
      },
    };
  },
});
