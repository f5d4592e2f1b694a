import { pino } from 'pino';
import { subjects, type EndpointSpec, type RequestOf, type ResponseOf } from '@perry-hub/contracts';
import { dbOptions, openPool, type Pool } from '@perry-hub/db';
import { call, launchService, loadConfig, type LaunchedService, type NatsConnection } from '@perry-hub/runtime';
import type { TestDatabase } from '@perry-hub/testkit';
import { license } from '../src/index.js';
import { connectTestNats, serviceEnv } from '@perry-hub/testkit';

export interface LicenseHarness {
  nc: NatsConnection;
  db: Pool;
  service: LaunchedService;
  call<E extends EndpointSpec>(spec: E, request: RequestOf<E>): Promise<ResponseOf<E>>;
  close(): Promise<void>;
}

export async function startLicense(
  natsUrl: string,
  prefix: string,
  database: TestDatabase,
  extra: Record<string, string> = {},
): Promise<LicenseHarness> {
  const env = {
    ...serviceEnv({ natsUrl, prefix, database }),
    ...extra,
  };
  const service = await launchService(license, loadConfig(license.config, env) as never, pino({ level: 'silent' }));
  const nc = await connectTestNats(natsUrl);
  const db = openPool(dbOptions(database, 2));
  return {
    nc,
    db,
    service,
    call: (spec, request) => call(nc, subjects(prefix), spec, request),
    close: async () => {
      await service.stop();
      await nc.close();
      await db.end();
    },
  };
}
