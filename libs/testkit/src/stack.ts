import { rmSync } from 'node:fs';
import { join } from 'node:path';
import {
  getFreePorts,
  startMariaDb,
  startNatsServer,
  type ChildServer,
  type MariaDbOptions,
  type MariaDbServer,
  type NatsServer,
  type NatsServerOptions,
} from '@perry-hub/localstack';
import { jetstreamManager } from '@nats-io/jetstream';
import { nuid } from '@nats-io/nats-core';
import { onTestFinished } from 'vitest';
import { connectTestNats, testNatsUsers } from './nats-auth.js';
import { recordNatsLog, watchNatsLog } from './nats-violations.js';
import { createClusterNetwork, type ClusterNetwork } from './netns.js';
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
  /** TLS options for the test's own connections (a template that requires TLS). */
  tls?: { caFile?: string; certFile?: string; keyFile?: string };
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

/** What a cluster node's configuration needs to know about it (see `template`). */
export interface ClusterNodeSpec {
  readonly name: string;
  readonly serverName: string;
  /** Where clients reach this node (127.0.0.1, or its namespace's client address). */
  readonly clientHost: string;
  /** Where the other nodes' routes reach this node. */
  readonly routeHost: string;
  readonly clientPort: number;
  readonly routePort: number;
  readonly monitorPort: number;
  readonly storeDir: string;
  /** Route URLs of the other nodes. */
  readonly routes: readonly string[];
  /** Route URLs of every node, this one included. */
  readonly allRoutes: readonly string[];
}

export interface ClusterNode extends NatsServer {
  readonly serverName: string;
  /** Stops this node (SIGKILL when `kill`, else an orderly stop) and starts it again, same ports and store. */
  restart(options?: { kill?: boolean }): Promise<ClusterNode>;
}

export interface IsolatedNatsCluster {
  /** The current process of each node (replaced by restart()). */
  readonly nodes: ClusterNode[];
  /** Every node's client URL, comma-separated, as PERRY_HUB_NATS_URL takes them. */
  readonly urls: string;
  /** Kills node `i` with SIGKILL (not restarted). */
  kill(i: number): Promise<void>;
  restart(i: number, options?: { kill?: boolean }): Promise<ClusterNode>;
  /** With `namespaces`: cuts node `i` off from the other nodes (its clients keep it). */
  partition(i: number): void;
  /** Ends `partition(i)`. */
  heal(i: number): void;
  /** Each node's log file (kept until the cluster is removed). */
  readonly logFiles: readonly string[];
}

/**
 * A cluster of `size` nats-servers on loopback, each with its own store, routed to each other,
 * requiring the test credentials like startIsolatedNats. Stopped and removed like it too.
 */
/** A cluster whose nodes each have a network namespace of their own, so that `partition()` works (needs root). */
export async function startPartitionableNatsCluster(size = 3): Promise<IsolatedNatsCluster> {
  const [tag] = await getFreePorts(1);
  return startIsolatedNatsCluster(size, { network: createClusterNetwork(size, tag!) });
}

export async function startIsolatedNatsCluster(
  size = 3,
  isolated: Omit<IsolatedNatsOptions, 'port' | 'cluster' | 'template'> & {
    /** Run each node from this configuration (e.g. infra/nats/cluster.conf) instead of a rendered one. */
    template?: (node: ClusterNodeSpec) => { text: string; env: Record<string, string> };
    /**
     * Each node in a network namespace of its own (from `createClusterNetwork`, needs root), so
     * that `partition()` can cut it off. Removed with the cluster.
     */
    network?: ClusterNetwork;
  } = {},
): Promise<IsolatedNatsCluster> {
  const { expectPermissionViolations, template, network, ...options } = isolated;
  const dir = newTempDir('nats-cluster');
  const logs = Array.from({ length: size }, (_, i) => join(dir, `n${i}`, 'nats.log'));
  const picked = await getFreePorts(size * 3);
  const ports = Array.from({ length: size }, (_, i) => ({
    client: picked[3 * i]!,
    route: picked[3 * i + 1]!,
    monitor: picked[3 * i + 2]!,
  }));
  const cleanup = registerCleanup(dir, () => {
    if (!expectPermissionViolations) for (const log of logs) recordNatsLog(log);
    network?.remove();
  });
  const clientHost = (i: number) => network?.clientHost(i) ?? '127.0.0.1';
  const routeUrl = (j: number) => `nats-route://${network?.routeHost(j) ?? '127.0.0.1'}:${ports[j]!.route}`;
  const name = `perry-hub-test-${ports[0]!.client}`;
  const startNode = async (i: number): Promise<ClusterNode> => {
    const serverName = `${name}-n${i}`;
    const dataDir = join(dir, `n${i}`);
    const node = {
      name,
      serverName,
      routePort: ports[i]!.route,
      ...(network ? { routeHost: network.routeHost(i) } : {}),
      routes: ports.flatMap((_, j) => (j === i ? [] : [routeUrl(j)])),
    };
    const server = await startNatsServer({
      shutdownTimeoutMs: TEST_SHUTDOWN_TIMEOUT_MS,
      users: testNatsUsers(),
      ...options,
      host: clientHost(i),
      ...(network ? { netns: network.namespace(i) } : {}),
      port: ports[i]!.client,
      dataDir,
      logFile: logs[i]!,
      cluster: node,
      ...(template
        ? {
            template: template({
              ...node,
              clientHost: clientHost(i),
              routeHost: network?.routeHost(i) ?? '127.0.0.1',
              clientPort: ports[i]!.client,
              monitorPort: ports[i]!.monitor,
              storeDir: dataDir,
              allRoutes: ports.map((_, j) => routeUrl(j)),
            }),
          }
        : {}),
    });
    cleanup.track(server);
    const running: ClusterNode = Object.assign(server, {
      serverName,
      restart: async ({ kill = false } = {}) => {
        if (kill) await killNode(server);
        else await server.stop();
        const next = await startNode(i);
        cluster.nodes[i] = next;
        return next;
      },
    });
    return running;
  };
  let nodes = await Promise.all(ports.map((_, i) => startNode(i)));
  const urls = ports.map((p, i) => `nats://${clientHost(i)}:${p.client}`).join(',');
  for (let start = 1; ; start++) {
    await jetStreamAnswers(urls, options.tls);
    if (await replicasPlaced(urls, size, options.tls)) break;
    // nats-server 2.10 can bootstrap its JetStream meta group without one of the nodes (its
    // /jsz then says cluster_size 2 of 3) and stay so: every replicated stream is refused with
    // "no suitable peers for placement" (a CI run's hub never started). Started afresh.
    if (start >= CLUSTER_STARTS) {
      throw new Error(`the NATS cluster could not place ${size} replicas after ${start} fresh starts`);
    }
    await Promise.all(nodes.map((node) => node.stop()));
    for (let i = 0; i < size; i++) rmSync(join(dir, `n${i}`, 'jetstream'), { recursive: true, force: true });
    nodes = await Promise.all(ports.map((_, i) => startNode(i)));
  }
  const partitionable = () => {
    if (!network) throw new Error('partition() needs a cluster started with a network');
    return network;
  };
  const cluster: IsolatedNatsCluster = {
    nodes,
    urls,
    kill: (i) => killNode(cluster.nodes[i]!),
    restart: (i, opts) => cluster.nodes[i]!.restart(opts),
    partition: (i) => partitionable().partition(i),
    heal: (i) => partitionable().heal(i),
    logFiles: logs,
  };
  return cluster;
}

const CLUSTER_STARTS = 3;

/**
 * Whether the cluster places a stream on every node: a probe stream with `size` replicas is
 * created (tried for a while: a new meta group takes a moment to know every peer) and deleted.
 */
async function replicasPlaced(
  urls: string,
  size: number,
  tls: IsolatedNatsOptions['tls'],
  timeoutMs = 20_000,
): Promise<boolean> {
  if (size < 2) return true;
  const nc = await connectTestNats(urls, tls ? { tls } : {});
  try {
    const jsm = await jetstreamManager(nc, { timeout: 5_000, checkAPI: false });
    const name = `PERRY_TEST_PLACEMENT_${nuid.next()}`;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        await jsm.streams.add({ name, subjects: [`perry-test-placement.${name}`], num_replicas: size });
        await jsm.streams.delete(name).catch(() => undefined);
        return true;
      } catch {
        if (Date.now() > deadline) return false;
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  } finally {
    await nc.close();
  }
}

/** A new cluster answers JetStream requests only once it has elected its meta leader. */
async function jetStreamAnswers(urls: string, tls: IsolatedNatsOptions['tls'], timeoutMs = 30_000): Promise<void> {
  const nc = await connectTestNats(urls, tls ? { tls } : {});
  try {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        await nc.request('$JS.API.INFO', undefined, { timeout: 1_000 });
        return;
      } catch (err) {
        if (Date.now() > deadline)
          throw new Error(`the NATS cluster has no JetStream leader after ${timeoutMs} ms`, { cause: err });
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  } finally {
    await nc.close();
  }
}

async function killNode(server: NatsServer): Promise<void> {
  try {
    process.kill(server.pid, 'SIGKILL');
  } catch {
    // Already gone.
  }
  await server.exited;
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
