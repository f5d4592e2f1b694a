import { testNatsCredentialsDir } from './nats-auth.js';

/**
 * The environment a service under test reads: the shared servers, this test's prefix and
 * database, and the test NATS credentials (each service connects as its own user).
 */
export interface ServiceEnvInput {
  natsUrl: string;
  prefix: string;
  database?: { host: string; port: number; user: string; password: string; database: string };
}

export function serviceEnv(input: ServiceEnvInput, extra: Record<string, string> = {}): Record<string, string> {
  const db = input.database;
  return {
    PERRY_HUB_NATS_URL: input.natsUrl,
    PERRY_HUB_NATS_CREDENTIALS_DIR: testNatsCredentialsDir(),
    PERRY_HUB_SUBJECT_PREFIX: input.prefix,
    PERRY_HUB_LOG_LEVEL: 'silent',
    PERRY_HUB_HTTP_PORT: '0',
    PERRY_HUB_HTTP_HOST: '127.0.0.1',
    PERRY_HUB_WS_PORT: '0',
    ...(db
      ? {
          PERRY_DB_HOST: db.host,
          PERRY_DB_PORT: String(db.port),
          PERRY_DB_USER: db.user,
          PERRY_DB_PASSWORD: db.password,
          PERRY_DB_NAME: db.database,
        }
      : {}),
    ...extra,
  };
}
