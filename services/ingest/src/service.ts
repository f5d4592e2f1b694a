/**
 * The ingest service: the public HTTP API. Stopping it stops intake first (Fastify answers 503
 * while closing and waits for in-flight requests).
 */
import { defineService } from '@perry-hub/runtime';
import type { AddressInfo } from 'node:net';
import { buildApp } from './app.js';
import { IngestConfig } from './config.js';

export { IngestConfig } from './config.js';
export { buildApp } from './app.js';

export const ingest = defineService({
  name: 'ingest',
  config: IngestConfig,
  needsDb: true,
  start: async (deps, config) => {
    const app = buildApp(deps, config);
    await app.listen({ port: config.httpPort, host: config.httpHost });
    const address = app.server.address() as AddressInfo;
    deps.log.info({ port: address.port, host: config.httpHost }, 'HTTP API listening');
    return {
      info: { httpPort: address.port, server: app.server },
      stop: async () => {
        await app.close();
      },
    };
  },
});
