import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join, resolve } from 'node:path';
import { findBinary } from './binaries.js';
import { assertSafeNatsConfig, renderNatsAccounts } from './nats-config.js';
import { LocalStackError, isLocalStackError } from './errors.js';
import { openChildLog } from './log-tail.js';
import { getFreePort, looksLikePortInUse } from './ports.js';
import { waitUntilReady } from './ready.js';
import { terminateStale } from './stale.js';
import { SupervisedProcess } from './supervise.js';
import type { NatsServer, NatsServerOptions } from './types.js';

const DEFAULT_READY_TIMEOUT_MS = 10_000;
const DEFAULT_SHUTDOWN_TIMEOUT_MS = 10_000;
const PROBE_TIMEOUT_MS = 1_000;
const RANDOM_PORT_ATTEMPTS = 5;
/** 64 TiB: a ceiling for reservations only; the disk is not claimed. */
const LOCAL_MAX_FILE_STORE_BYTES = 64 * 1024 ** 4;
/**
 * JetStream's memory storage: every stream and bucket of the hub is file-backed, so this is a
 * ceiling for a memory stream created by hand, not the default 75% of the machine's memory.
 */
export const LOCAL_MAX_MEMORY_STORE_BYTES = 64 * 1024 ** 2;
/**
 * The Go runtime settings of the all-in-one's nats-server, each overridden by the same variable in
 * the environment of whoever starts it:
 *
 * - `GOMEMLIMIT`, the soft memory limit: nearing it, the garbage collector runs sooner and frees
 *   the file store's block caches (held weakly by nats-server 2.10) instead of growing the heap,
 *   so a burst of uploads leaves the server's memory bounded. Soft: what the server really needs
 *   (its live heap) it still gets.
 * - `GOMAXPROCS=1`: the server shares the machine with the hub's event loop and MariaDB, and one
 *   client (the hub) sends it everything. With a Go scheduler thread per core, most messages woke
 *   a second thread (futex, nanosleep), and on a virtual machine every such switch costs a trip to
 *   the hypervisor: about a quarter of the server's CPU per build went to it.
 * - `GOGC=400`: a collection when the heap has grown to five times what the last one kept,
 *   instead of twice. The server's live heap is small (tens of MiB) and every chunk of a transfer
 *   is garbage at once, so the default collected, returned the pages to the kernel and faulted
 *   them back in all the time. The memory limit still bounds the heap.
 *
 * Together, `npm run bench -- cost` on 2 cores: the server's CPU per build from about 20 ms to 9.5.
 */
export const LOCAL_NATS_GO_RUNTIME: Readonly<Record<'GOMEMLIMIT' | 'GOMAXPROCS' | 'GOGC', string>> = {
  GOMEMLIMIT: '256MiB',
  GOMAXPROCS: '1',
  GOGC: '400',
};
const MONITOR_HOST = '127.0.0.1';

/** LOCAL_NATS_GO_RUNTIME, with what the environment sets instead. */
function goRuntime(): Record<string, string> {
  return Object.fromEntries(
    Object.entries(LOCAL_NATS_GO_RUNTIME).map(([name, value]) => [name, process.env[name] || value]),
  );
}

/**
 * nats-server appends "jetstream" to store_dir, so pointing store_dir at the data directory puts
 * the store at `<dataDir>/jetstream`. Users, when given, live in one named account (never a
 * top-level authorization block, see nats-config.ts); the whole text is checked before use.
 */
function renderConfig(
  host: string,
  port: number,
  dataDir: string,
  serverName: string,
  monitorPort: number | undefined,
  options: Pick<NatsServerOptions, 'maxPayloadBytes' | 'users' | 'syncAlways' | 'cluster'>,
): string {
  const cluster = options.cluster;
  const lines = [
    '# Written by @perry-hub/localstack on every start; edits are overwritten.',
    `server_name: ${JSON.stringify(serverName)}`,
    `listen: ${JSON.stringify(`${host}:${port}`)}`,
    ...(options.maxPayloadBytes === undefined ? [] : [`max_payload: ${options.maxPayloadBytes}`]),
    // Monitoring answers anyone who reaches it, without credentials: loopback only.
    ...(monitorPort === undefined ? [] : [`http: ${JSON.stringify(`${MONITOR_HOST}:${monitorPort}`)}`]),
    'jetstream {',
    `  store_dir: ${JSON.stringify(dataDir)}`,
    ...(options.syncAlways ? ['  sync_interval: always'] : []),
    // Every stream with max_bytes reserves that much up front against max_file_store, whose
    // default is 75% of the free disk: a few hubs (one per test, all on one server) or one on a
    // small disk would be refused their streams. The hub's own max_bytes bound what it stores.
    `  max_file_store: ${LOCAL_MAX_FILE_STORE_BYTES}`,
    `  max_memory_store: ${LOCAL_MAX_MEMORY_STORE_BYTES}`,
    '}',
    ...(cluster
      ? [
          'cluster {',
          `  name: ${JSON.stringify(cluster.name)}`,
          `  listen: ${JSON.stringify(`${cluster.routeHost ?? host}:${cluster.routePort}`)}`,
          `  routes: [${cluster.routes.map((r) => JSON.stringify(r)).join(', ')}]`,
          '}',
        ]
      : []),
    ...(options.users ? [renderNatsAccounts(options.users)] : []),
    '',
  ];
  const text = lines.join('\n');
  assertSafeNatsConfig(text);
  return text;
}

export async function startNatsServer(options: NatsServerOptions): Promise<NatsServer> {
  const binary = findBinary('nats-server');
  const dataDir = resolve(options.dataDir);
  mkdirSync(dataDir, { recursive: true });
  const host = options.host ?? '127.0.0.1';
  const confPath = join(dataDir, 'nats.conf');
  const pidFile = join(dataDir, 'nats-server.pid');
  const shutdownTimeoutMs = options.shutdownTimeoutMs ?? DEFAULT_SHUTDOWN_TIMEOUT_MS;
  await terminateStale({ pidFile, binaryName: 'nats-server', marker: confPath, shutdownTimeoutMs });

  const fixedPort = options.port !== undefined && options.port !== 0 ? options.port : undefined;
  for (let attempt = 1; ; attempt++) {
    const port = fixedPort ?? (await getFreePort(host));
    const monitorPort =
      options.monitorPort === undefined || options.monitorPort !== 0
        ? options.monitorPort
        : await getFreePort(MONITOR_HOST);
    // A fresh name per start lets the probe tell our server from another one on the same port;
    // a cluster node keeps its name, which JetStream's placement of replicas is bound to.
    const serverName = options.cluster?.serverName ?? `perry-hub-${randomBytes(6).toString('hex')}`;
    // 0600: the file names users (public keys only for NKEY users, passwords for the others).
    const template = options.template;
    if (template) {
      assertSafeNatsConfig(template.text);
      const accounts = join(dataDir, 'accounts.conf');
      writeFileSync(accounts, options.users ? renderNatsAccounts(options.users) : '', { mode: 0o600 });
      chmodSync(accounts, 0o600);
    }
    writeFileSync(confPath, template?.text ?? renderConfig(host, port, dataDir, serverName, monitorPort, options), {
      mode: 0o600,
    });
    chmodSync(confPath, 0o600);
    const child = await SupervisedProcess.start({
      name: 'nats-server',
      ...(options.netns
        ? { command: 'ip', args: ['netns', 'exec', options.netns, binary, '-c', confPath] }
        : { command: binary, args: ['-c', confPath] }),
      pidFile,
      log: openChildLog(options.logFile),
      shutdownTimeoutMs,
      env: { ...goRuntime(), ...options.template?.env },
    });
    try {
      await waitUntilReady({
        name: 'nats-server',
        child,
        probe: () => probeNats(host, port, serverName),
        timeoutMs: options.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS,
      });
    } catch (err) {
      const portTaken = isLocalStackError(err, 'EXITED_EARLY') && looksLikePortInUse(err.message);
      const randomPorts = fixedPort === undefined || options.monitorPort === 0;
      if (randomPorts && portTaken && attempt < RANDOM_PORT_ATTEMPTS) continue;
      throw err;
    }
    return {
      pid: child.pid,
      url: `nats://${host}:${port}`,
      port,
      storeDir: join(dataDir, 'jetstream'),
      ...(monitorPort === undefined ? {} : { monitorUrl: `http://${MONITOR_HOST}:${monitorPort}` }),
      exited: child.exited,
      stop: () => child.stop(),
    };
  }
}

/**
 * Ready means: the client port answers INFO from this very server (its name) with JetStream on,
 * and a PING gets its PONG. The server enables JetStream (and recovers its store) before it opens
 * the client port.
 */
export function probeNats(host: string, port: number, serverName: string): Promise<true | string> {
  return new Promise((resolvePromise, reject) => {
    const socket = connect({ host, port });
    let buffer = '';
    let sentPing = false;
    const finish = (result: true | string | Error): void => {
      clearTimeout(timer);
      socket.destroy();
      if (result instanceof Error) reject(result);
      else resolvePromise(result);
    };
    const timer = setTimeout(() => finish('timed out'), PROBE_TIMEOUT_MS);
    socket.setEncoding('utf8');
    socket.on('error', (err) => finish(err.message));
    socket.on('close', () => finish('connection closed'));
    socket.on('data', (chunk: string) => {
      buffer += chunk;
      if (!sentPing) {
        const end = buffer.indexOf('\r\n');
        if (end < 0) return;
        const line = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        if (!line.startsWith('INFO ')) return finish(`unexpected greeting ${line.slice(0, 80)}`);
        const info = parseJson(line.slice(5));
        if (info?.['server_name'] !== serverName) return finish('another server holds the port');
        if (info['jetstream'] !== true) {
          return finish(new LocalStackError('NOT_READY', `nats-server on port ${port} answers without JetStream`));
        }
        // With authentication on, an anonymous CONNECT is refused: this server's INFO suffices.
        if (info['auth_required'] === true) return finish(true);
        sentPing = true;
        socket.write('CONNECT {"verbose":false,"pedantic":false}\r\nPING\r\n');
      }
      if (buffer.includes('PONG\r\n')) finish(true);
      else if (buffer.includes('-ERR')) finish(buffer.trim().slice(0, 120));
    });
  });
}

function parseJson(text: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}
