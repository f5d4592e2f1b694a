/**
 * The local stack of the all-in-one: a nats-server and a MariaDB as child processes with their
 * data under one directory, started only for what the environment does not configure.
 */
import { mkdirSync, readFileSync, writeFileSync, rmSync, existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { natsUsers, SERVICE_NAMES } from '@perry-hub/contracts';
import { ensureNkeySeeds, startMariaDb, startNatsServer, type ChildServer } from '@perry-hub/localstack';
import type { Logger } from '@perry-hub/runtime';

/** Seed files of the local NATS users, with the other local secrets (see start.ts). */
export const LOCAL_NATS_CREDENTIALS_DIR = 'nats-credentials';
/** A tool identity for trying NATS-native submission against the all-in-one. */
export const LOCAL_TOOL = 'tool-local';

export interface LocalStack {
  /** Environment overrides pointing the services at what was started. */
  readonly env: Record<string, string>;
  readonly servers: readonly { name: string; url: string }[];
  stop(): Promise<void>;
}

export interface LocalStackOptions {
  dataDir: string;
  natsPort: number;
  natsMonitorPort: number;
  dbPort: number;
  startNats: boolean;
  startDb: boolean;
  /** The hub's subject prefix: the NATS users' permissions are derived for exactly it. */
  subjectPrefix: string;
  log: Logger;
}

/** One hub per data directory: a second one would fight over the same servers' files. */
function takeDataDirLock(dataDir: string): () => void {
  const lockFile = join(dataDir, 'hub.pid');
  if (existsSync(lockFile)) {
    const pid = Number(readFileSync(lockFile, 'utf8').trim());
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && isAlive(pid)) {
      throw new Error(`Another perry-hub (pid ${pid}) is using ${dataDir}. Stop it first, or set PERRY_HUB_DATA_DIR.`);
    }
  }
  writeFileSync(lockFile, `${process.pid}\n`);
  return () => rmSync(lockFile, { force: true });
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return /node|perry-hub/.test(cmdline);
  } catch {
    return false;
  }
}

export async function startLocalStack(options: LocalStackOptions): Promise<LocalStack> {
  const dataDir = resolve(options.dataDir);
  mkdirSync(dataDir, { recursive: true });
  const releaseLock = takeDataDirLock(dataDir);
  const started: ChildServer[] = [];
  const env: Record<string, string> = {};
  const servers: { name: string; url: string }[] = [];
  const stop = async () => {
    for (const server of started.reverse()) await server.stop();
    releaseLock();
  };
  try {
    if (options.startNats) {
      options.log.info({ dataDir: join(dataDir, 'nats') }, 'starting local nats-server');
      // Every service its own NKEY user (generated once, kept 0600 in the data dir); the server
      // config holds only the public keys.
      const credentialsDir = join(dataDir, LOCAL_NATS_CREDENTIALS_DIR);
      const keys = ensureNkeySeeds(credentialsDir, [...SERVICE_NAMES, LOCAL_TOOL]);
      const nats = await startNatsServer({
        dataDir: join(dataDir, 'nats'),
        port: options.natsPort,
        monitorPort: options.natsMonitorPort,
        logFile: join(dataDir, 'nats.log'),
        users: natsUsers(options.subjectPrefix, keys),
        syncAlways: true,
      });
      started.push(nats);
      env['PERRY_HUB_NATS_URL'] = nats.url;
      env['PERRY_HUB_NATS_CREDENTIALS_DIR'] = credentialsDir;
      servers.push({ name: 'NATS', url: nats.url });
      // nats-server's own monitoring (/varz, /jsz, ...), on loopback: counters an operator reads.
      if (nats.monitorUrl) servers.push({ name: 'Monitor', url: nats.monitorUrl });
    }
    if (options.startDb) {
      options.log.info({ dataDir: join(dataDir, 'mariadb') }, 'starting local MariaDB');
      const db = await startMariaDb({
        dataDir: join(dataDir, 'mariadb'),
        port: options.dbPort,
        logFile: join(dataDir, 'mariadb.log'),
      });
      started.push(db);
      Object.assign(env, {
        PERRY_DB_HOST: db.host,
        PERRY_DB_PORT: String(db.port),
        PERRY_DB_USER: db.user,
        PERRY_DB_PASSWORD: db.password,
      });
      servers.push({ name: 'MySQL', url: `mysql://${db.user}@${db.host}:${db.port}` });
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return { env, servers, stop };
}
