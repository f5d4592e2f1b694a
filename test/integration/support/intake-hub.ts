/**
 * The services that take a build in (license, scheduler, artifact-store, ingest), launched in
 * this process against the test stack, with every log line captured so tests can search them.
 * A fake worker-gateway answers the admin endpoints (the real one is not part of intake).
 */
import { PassThrough } from 'node:stream';
import { pino } from 'pino';
import {
  HUB_VERSION,
  adminWorkersEndpoint,
  subjects,
  updatePerryEndpoint,
  type AdminWorker,
  type ServiceName,
} from '@perry-hub/contracts';
import { dbOptions, openPool, type Pool } from '@perry-hub/db';
import {
  generateSealKey,
  handle,
  launchService,
  loadConfig,
  parseSealKeys,
  serveEndpoints,
  type LaunchedService,
  type NatsConnection,
  type SealKey,
  type ServiceDefinition,
} from '@perry-hub/runtime';
import { artifactStore } from '@perry-hub/artifact-store';
import { ingest } from '@perry-hub/ingest';
import { license } from '@perry-hub/license';
import { scheduler } from '@perry-hub/scheduler';
import {
  createTestDatabase,
  getTestStack,
  uniquePrefix,
  type TestDatabase,
  connectTestNats,
  serviceEnv,
} from '@perry-hub/testkit';

export const ADMIN_SECRET = 'test-admin-secret-0123456789';

export interface IntakeHub {
  url: string;
  natsUrl: string;
  prefix: string;
  env: Record<string, string>;
  database: TestDatabase;
  db: Pool;
  nc: NatsConnection;
  sealKeys: SealKey[];
  /** Everything the services logged so far (JSON lines). */
  logs(): string;
  stop(): Promise<void>;
}

const DEFINITIONS: Partial<Record<ServiceName, ServiceDefinition>> = {
  license: license as never,
  scheduler: scheduler as never,
  'artifact-store': artifactStore as never,
  ingest: ingest as never,
};

export async function startIntakeHub(
  options: { env?: Record<string, string>; services?: ServiceName[]; natsUrl?: string } = {},
): Promise<IntakeHub> {
  const stack = await getTestStack();
  const natsUrl = options.natsUrl ?? stack.natsUrl;
  const prefix = uniquePrefix('intake');
  const database = await createTestDatabase('intake');
  const credentialsKey = generateSealKey();
  const env: Record<string, string> = {
    ...serviceEnv({ natsUrl, prefix, database }),
    PERRY_HUB_HTTP_PORT: '0',
    PERRY_HUB_HTTP_HOST: '127.0.0.1',
    PERRY_HUB_ADMIN_SECRET: ADMIN_SECRET,
    PERRY_HUB_CREDENTIALS_KEY: credentialsKey,
    ...options.env,
  };
  let captured = '';
  const sink = new PassThrough();
  sink.on('data', (d: Buffer) => (captured += d.toString()));
  const log = pino({ level: 'trace' }, sink);

  const started: LaunchedService[] = [];
  const nc = await connectTestNats(natsUrl);
  const db = openPool(dbOptions(database, 2));
  for (const name of options.services ?? (['license', 'scheduler', 'artifact-store', 'ingest'] as const)) {
    const definition = DEFINITIONS[name]!;
    started.push(await launchService(definition, loadConfig(definition.config, env) as never, log));
  }
  const ingestService = started.find((s) => s.name === 'ingest');
  return {
    url: `http://127.0.0.1:${String(ingestService?.info['httpPort'])}`,
    natsUrl,
    prefix,
    env,
    database,
    db,
    nc,
    sealKeys: parseSealKeys(credentialsKey),
    logs: () => captured,
    stop: async () => {
      for (const s of started.reverse()) await s.stop();
      await nc.close();
      await db.end();
      await database.drop();
    },
  };
}

/** A stand-in worker-gateway that knows two workers and remembers the expected version. */
export async function fakeWorkerGateway(hub: IntakeHub, workers: AdminWorker[]) {
  let expectedVersion = '0.5.13';
  const calls: unknown[] = [];
  const service = await serveEndpoints(
    {
      nc: hub.nc,
      subjects: subjects(hub.prefix),
      service: 'worker-gateway',
      version: HUB_VERSION,
      log: pino({ level: 'silent' }),
    },
    [
      handle(adminWorkersEndpoint, () => ({ expectedVersion, workers })),
      handle(updatePerryEndpoint, (request) => {
        calls.push(request);
        if (request.expectedVersion) expectedVersion = request.expectedVersion;
        return { expectedVersion, workersNotified: workers.filter((w) => !w.busy).length, workers };
      }),
    ],
  );
  return { calls, stop: () => service.stop() };
}
