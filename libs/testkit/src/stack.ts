import { rmSync } from 'node:fs';
import { join } from 'node:path';
import {
  startMariaDb,
  startNatsServer,
  type ChildServer,
  type MariaDbOptions,
  type MariaDbServer,
  type NatsServer,
  type NatsServerOptions,
} from '@perry-hub/localstack';
import { onTestFinished } from 'vitest';
import { testNatsUsers } from './nats-auth.js';
import { recordNatsLog, watchNatsLog } from './nats-violations.js';
import { newTempDir, trackServer } from './temp.js';

/** Test data is throwaway: no point in waiting long for a clean shutdown. */
const TEST_SHUTDOWN_TIMEOUT_MS = 2_000;

export interface DbCredentials {
  host: string;
  port: number;
  user: string;
  password: string;
}

export interface TestStack {
  natsUrl: string;
  db: DbCredentials;
  natsServer: NatsServer;
  mariadb: MariaDbServer;
}

let stack: Promise<TestStack> | undefined;

/**
 * The nats-server and MariaDB of this test process, started on first use and killed when the
 * process exits. Tests share them and isolate themselves by `uniquePrefix()` and
 * `createTestDatabase()`. A failure (such as MISSING_BINARY) is remembered, so every test that
 * needs the stack fails with the same clear error instead of retrying a slow start.
 */
export function getTestStack(): Promise<TestStack> {
  stack ??= startStack();
  return stack;
}

async function startStack(): Promise<TestStack> {
  const dir = newTempDir('stack');
  const [nats, mariadb] = await Promise.allSettled([
    startNatsServer({
      dataDir: join(dir, 'nats'),
      logFile: join(dir, 'nats.log'),
      shutdownTimeoutMs: TEST_SHUTDOWN_TIMEOUT_MS,
      users: testNatsUsers(),
      monitorPort: 0,
    }),
    startMariaDb({
      dataDir: join(dir, 'mariadb'),
      logFile: join(dir, 'mariadb.log'),
      durable: false,
      shutdownTimeoutMs: TEST_SHUTDOWN_TIMEOUT_MS,
    }),
  ]);
  if (nats.status === 'rejected' || mariadb.status === 'rejected') {
    await Promise.all([nats, mariadb].map((r) => (r.status === 'fulfilled' ? r.value.stop() : undefined)));
    throw nats.status === 'rejected' ? nats.reason : (mariadb as PromiseRejectedResult).reason;
  }
  trackServer(nats.value);
  trackServer(mariadb.value);
  watchNatsLog(join(dir, 'nats.log'));
  const db = mariadb.value;
  return {
    natsUrl: nats.value.url,
    db: { host: db.host, port: db.port, user: db.user, password: db.password },
    natsServer: nats.value,
    mariadb: db,
  };
}

/** A private server for a test that kills or restarts it; `restart()` keeps data dir and port. */
export interface IsolatedNats extends NatsServer {
  readonly dataDir: string;
  restart(): Promise<IsolatedNats>;
}

export interface IsolatedMariaDb extends MariaDbServer {
  restart(): Promise<IsolatedMariaDb>;
}

/**
 * Isolated servers require the test credentials too, unless `users` says otherwise. A test that
 * commits permissions violations on purpose says so, or its file fails (see setup.ts).
 */
export type IsolatedNatsOptions = Omit<NatsServerOptions, 'dataDir' | 'logFile'> & {
  expectPermissionViolations?: boolean;
};
export type IsolatedMariaDbOptions = Omit<MariaDbOptions, 'dataDir' | 'logFile'>;

/**
 * Starts a nats-server of its own in a fresh temp dir. Called inside a test, it is stopped and its
 * directory removed when that test finishes; called elsewhere (beforeAll), when the process exits.
 */
export async function startIsolatedNats(isolated: IsolatedNatsOptions = {}): Promise<IsolatedNats> {
  const { expectPermissionViolations, ...options } = isolated;
  const dataDir = newTempDir('nats');
  const cleanup = registerCleanup(dataDir, () => {
    if (!expectPermissionViolations) recordNatsLog(join(dataDir, 'nats.log'));
  });
  const start = async (port: number | undefined): Promise<IsolatedNats> => {
    const server = await startNatsServer({
      shutdownTimeoutMs: TEST_SHUTDOWN_TIMEOUT_MS,
      users: testNatsUsers(),
      monitorPort: 0,
      ...options,
      ...(port === undefined ? {} : { port }),
      dataDir,
      logFile: join(dataDir, 'nats.log'),
    });
    cleanup.track(server);
    return Object.assign(server, {
      dataDir,
      restart: async () => {
        await server.stop();
        return start(server.port);
      },
    });
  };
  return start(options.port);
}

/** Like startIsolatedNats, for MariaDB (non-durable unless `durable: true` is passed). */
export async function startIsolatedMariaDb(options: IsolatedMariaDbOptions = {}): Promise<IsolatedMariaDb> {
  const dataDir = newTempDir('mariadb');
  const cleanup = registerCleanup(dataDir);
  const start = async (port: number | undefined): Promise<IsolatedMariaDb> => {
    const server = await startMariaDb({
      durable: false,
      shutdownTimeoutMs: TEST_SHUTDOWN_TIMEOUT_MS,
      ...options,
      ...(port === undefined ? {} : { port }),
      dataDir: join(dataDir, 'data'),
      logFile: join(dataDir, 'mariadb.log'),
    });
    cleanup.track(server);
    return Object.assign(server, {
      restart: async () => {
        await server.stop();
        return start(server.port);
      },
    });
  };
  return start(options.port);
}

function registerCleanup(dir: string, beforeRemove?: () => void): { track(server: ChildServer): void } {
  const servers: ChildServer[] = [];
  const cleanup = async (): Promise<void> => {
    await Promise.all(servers.map((server) => server.stop()));
    beforeRemove?.();
    rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
  };
  try {
    onTestFinished(cleanup);
  } catch {
    // Not inside a test: the process-exit cleanup of the temp root covers it.
  }
  return {
    track(server) {
      servers.push(server);
      trackServer(server);
    },
  };
}
