/**
 * What the benchmark runs against: its own nats-server and MariaDB (temporary directories, free
 * ports), and the hub as a child process (`perry-hub start`, built) pointed at them, so that the
 * hub's memory and CPU are its own. Child processes are measured through /proc.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { nkeyAuthenticator, type NatsConnection } from '@nats-io/nats-core';
import { connect } from '@nats-io/transport-node';
import { HUB_NODE_FLAGS } from '@perry-hub/cli/node-flags';
import { DEFAULT_SUBJECT_PREFIX, natsUsers, SERVICE_NAMES } from '@perry-hub/contracts';
import {
  ensureNkeySeeds,
  getFreePort,
  SEED_FILE_SUFFIX,
  startMariaDb,
  startNatsServer,
  type MariaDbServer,
  type NatsServer,
} from '@perry-hub/localstack';
import { cpuSecs } from '../../support/build-cost.js';
import { sleep, waitUpTo } from './stats.js';

export { cpuSecs };

export const ROOT = join(import.meta.dirname, '..', '..', '..');
export const WORKER_SECRET = 'bench-worker-secret';
const ADMIN_SECRET = randomBytes(24).toString('base64url');

const children = new Set<ChildProcess>();

/** Children die with the benchmark, also when it fails or is interrupted (not when SIGKILLed). */
export function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}
process.once('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => process.exit(130));
}

export interface Infra {
  readonly nats: NatsServer;
  /** One NKEY seed per service, as a deployment has: the hub runs with its real permissions. */
  readonly natsCredentialsDir: string;
  /** A connection of the benchmark itself (baselines), as a user with no restrictions. */
  connectNats(): Promise<NatsConnection>;
  readonly db: MariaDbServer;
  stop(): Promise<void>;
}

const BENCH_USER = 'bench';

export interface InfraOptions {
  /** nats-server `jetstream { sync_interval: always }`: every acknowledged write is on disk. */
  readonly syncAlways?: boolean;
}

export async function startInfra(dir: string, options: InfraOptions = {}): Promise<Infra> {
  const natsCredentialsDir = join(dir, 'nats-credentials');
  const keys = ensureNkeySeeds(natsCredentialsDir, SERVICE_NAMES);
  const bench = ensureNkeySeeds(natsCredentialsDir, [BENCH_USER]).get(BENCH_USER)!;
  const nats = await startNatsServer({
    dataDir: join(dir, 'nats'),
    logFile: join(dir, 'nats.log'),
    users: [...natsUsers(DEFAULT_SUBJECT_PREFIX, keys), { nkey: bench }],
    // /varz counts the messages and bytes of a run (see test/support/build-cost.ts).
    monitorPort: 0,
    ...(options.syncAlways ? { syncAlways: true } : {}),
  });
  const seed = new TextEncoder().encode(
    readFileSync(join(natsCredentialsDir, `${BENCH_USER}${SEED_FILE_SUFFIX}`), 'utf8').trim(),
  );
  const connectNats = () => connect({ servers: nats.url, authenticator: nkeyAuthenticator(seed) });
  try {
    const db = await startMariaDb({ dataDir: join(dir, 'mariadb'), logFile: join(dir, 'mariadb.log') });
    return {
      nats,
      natsCredentialsDir,
      connectNats,
      db,
      stop: async () => {
        await db.stop();
        await nats.stop();
      },
    };
  } catch (err) {
    await nats.stop();
    throw err;
  }
}

export interface Hub {
  readonly child: ChildProcess;
  readonly url: string;
  /** The gateway's own WebSocket port, as workers are configured. */
  readonly workerUrl: string;
  /** `/ws` on the HTTP origin, as the CLI derives it. */
  readonly cliUrl: string;
  output(): string;
  stop(): Promise<void>;
}

export interface HubPorts {
  readonly http: number;
  readonly ws: number;
}

export async function hubPorts(): Promise<HubPorts> {
  return { http: await getFreePort(), ws: await getFreePort() };
}

/** `perry-hub start` (all six services in one process) against the benchmark's servers. */
export async function startHub(
  infra: Infra,
  dir: string,
  ports: HubPorts,
  credentialsKey: string,
  extraEnv: Record<string, string> = {},
): Promise<Hub> {
  const url = `http://127.0.0.1:${ports.http}`;
  mkdirSync(dir, { recursive: true });
  const env: Record<string, string> = {
    PATH: process.env['PATH'] ?? '',
    HOME: process.env['HOME'] ?? '/root',
    PERRY_HUB_DATA_DIR: dir,
    PERRY_HUB_NATS_URL: infra.nats.url,
    PERRY_HUB_NATS_CREDENTIALS_DIR: infra.natsCredentialsDir,
    PERRY_DB_HOST: infra.db.host,
    PERRY_DB_PORT: String(infra.db.port),
    PERRY_DB_USER: infra.db.user,
    PERRY_DB_PASSWORD: infra.db.password,
    PERRY_HUB_HTTP_PORT: String(ports.http),
    PERRY_HUB_HTTP_HOST: '127.0.0.1',
    PERRY_HUB_WS_PORT: String(ports.ws),
    PERRY_HUB_WS_HOST: '127.0.0.1',
    PERRY_HUB_PUBLIC_URL: url,
    PERRY_HUB_ADMIN_SECRET: ADMIN_SECRET,
    PERRY_HUB_WORKER_SECRET: WORKER_SECRET,
    PERRY_HUB_CREDENTIALS_KEY: credentialsKey,
    PERRY_HUB_VM_PROVIDER: 'none',
    // No rate limits, quotas or per-license concurrency limits: every job may run at once.
    PERRY_HUB_SELF_HOSTED: 'true',
    PERRY_HUB_LOG_LEVEL: process.env['BENCH_HUB_LOG_LEVEL'] ?? 'warn',
    PERRY_HUB_SHUTDOWN_GRACE_MS: '3000',
    // The bench's 10,000 idle workers and its fleet all connect from this one address.
    PERRY_HUB_WS_MAX_CONNECTIONS_PER_ADDRESS: '100000',
    // The log relay figure measures what the hub can carry (5,000 lines/s for 5 s), not the
    // per-worker budget that protects it (1,000/s with a burst of 10,000 by default).
    PERRY_HUB_WORKER_MESSAGES_PER_SEC: '20000',
    PERRY_HUB_WORKER_BURST_MESSAGES: '100000',
    PERRY_HUB_WORKER_BYTES_PER_SEC: String(64 * 1024 * 1024),
    PERRY_HUB_WORKER_BURST_BYTES: String(256 * 1024 * 1024),
    ...extraEnv,
  };
  // BENCH_HUB_NODE_OPTIONS="--cpu-prof --cpu-prof-dir=/tmp/prof" profiles the hub.
  const nodeArgs = (process.env['BENCH_HUB_NODE_OPTIONS'] ?? '').split(' ').filter(Boolean);
  const child = track(
    spawn(process.execPath, [...HUB_NODE_FLAGS, ...nodeArgs, join(ROOT, 'libs/cli/dist/bin.js'), 'start'], {
      cwd: ROOT,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
  let out = '';
  // BENCH_HUB_OUTPUT=/tmp/hub.log keeps all of the hub's output (with --trace-gc, for one).
  const copy = process.env['BENCH_HUB_OUTPUT']
    ? createWriteStream(process.env['BENCH_HUB_OUTPUT'], { flags: 'a' })
    : undefined;
  const keep = (d: Buffer) => {
    copy?.write(d);
    out = (out + d.toString()).slice(-20_000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const up = await waitUpTo(() => out.includes('Perry Hub is up') || child.exitCode !== null, 120_000, 100);
  if (!up || child.exitCode !== null) {
    child.kill('SIGKILL');
    throw new Error(`perry-hub did not start:\n${out}`);
  }
  return {
    child,
    url,
    workerUrl: `ws://127.0.0.1:${ports.ws}`,
    cliUrl: `ws://127.0.0.1:${ports.http}/ws`,
    output: () => out,
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGTERM');
      const done = await Promise.race([exited.then(() => true), sleep(20_000).then(() => false)]);
      if (!done) child.kill('SIGKILL');
      await exited;
    },
  };
}

/** Resident memory of a process, in MiB (0 once it is gone). */
export function rssMiB(pid: number | undefined): number {
  try {
    const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

/** Runs `work` and reports the CPU each process used meanwhile, in percent of one core. */
export async function cpuDuring<T>(
  pids: Record<string, number | undefined>,
  work: () => Promise<T>,
): Promise<{ result: T; cpu: string }> {
  const before = Object.entries(pids).map(([name, pid]) => [name, pid, cpuSecs(pid)] as const);
  const t0 = performance.now();
  const result = await work();
  const seconds = (performance.now() - t0) / 1000;
  const cpu = before
    .map(([name, pid, secs]) => `${name} ${(((cpuSecs(pid) - secs) / seconds) * 100).toFixed(0)}%`)
    .join(', ');
  return { result, cpu };
}

/** The license the benchmark submits with (self-hosted: no quota applies to it). */
export async function registerLicense(hub: Hub): Promise<string> {
  const res = await fetch(`${hub.url}/api/v1/license/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: '{}',
  });
  const body = (await res.json()) as { license_key?: string };
  if (!res.ok || !body.license_key) throw new Error(`license registration failed: ${res.status}`);
  return body.license_key;
}
