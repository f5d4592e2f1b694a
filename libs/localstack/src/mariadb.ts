import { createHash } from 'node:crypto';
import { mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createConnection, type RowDataPacket } from 'mysql2/promise';
import { findBinary } from './binaries.js';
import { isLocalStackError } from './errors.js';
import { openChildLog } from './log-tail.js';
import { ensureInitialized, privateTmpDir } from './mariadb-init.js';
import { getFreePort, looksLikePortInUse } from './ports.js';
import { waitUntilReady } from './ready.js';
import { terminateStale } from './stale.js';
import { SupervisedProcess } from './supervise.js';
import type { MariaDbOptions, MariaDbServer } from './types.js';

const HOST = '127.0.0.1';
const DEFAULT_READY_TIMEOUT_MS = 60_000;
const DEFAULT_SHUTDOWN_TIMEOUT_MS = 30_000;
const PROBE_TIMEOUT_MS = 2_000;
const RANDOM_PORT_ATTEMPTS = 5;
/** sun_path holds 108 bytes with the terminating NUL; keep a margin. */
const MAX_SOCKET_PATH_BYTES = 100;

/** A deep working directory would make `<dataDir>/mysqld.sock` too long for a Unix socket. */
function socketPathFor(dataDir: string): string {
  const inDataDir = join(dataDir, 'mysqld.sock');
  if (Buffer.byteLength(inDataDir) <= MAX_SOCKET_PATH_BYTES) return inDataDir;
  const digest = createHash('sha256').update(dataDir).digest('hex').slice(0, 16);
  return join(tmpdir(), `perry-hub-mariadb-${digest}.sock`);
}

function serverArgs(dataDir: string, socketPath: string, pidFile: string, port: number, durable: boolean): string[] {
  return [
    // Must come first; keeps the host's /etc/mysql settings out of a private server.
    '--no-defaults',
    `--datadir=${dataDir}`,
    // Its own temp dir: servers sharing /tmp name temporary tables alike (see privateTmpDir).
    `--tmpdir=${privateTmpDir(dataDir)}`,
    `--socket=${socketPath}`,
    `--pid-file=${pidFile}`,
    `--port=${port}`,
    `--bind-address=${HOST}`,
    // mariadbd refuses to run as root unless told to; the flag is ignored for other users.
    ...(process.getuid?.() === 0 ? ['--user=root'] : []),
    '--skip-name-resolve',
    // --no-defaults also drops Debian's utf8mb4 default, which would leave latin1.
    '--character-set-server=utf8mb4',
    '--collation-server=utf8mb4_general_ci',
    '--innodb-buffer-pool-size=64M',
    '--max-connections=500',
    ...(durable ? [] : ['--innodb-flush-log-at-trx-commit=2', '--innodb-doublewrite=0']),
  ];
}

export async function startMariaDb(options: MariaDbOptions): Promise<MariaDbServer> {
  const mariadbd = findBinary('mariadbd');
  const dataDir = resolve(options.dataDir);
  mkdirSync(dataDir, { recursive: true });
  const pidFile = join(dataDir, 'mariadbd.pid');
  const shutdownTimeoutMs = options.shutdownTimeoutMs ?? DEFAULT_SHUTDOWN_TIMEOUT_MS;
  const readyTimeoutMs = options.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS;
  await terminateStale({ pidFile, binaryName: 'mariadbd', marker: `--datadir=${dataDir}`, shutdownTimeoutMs });
  await ensureInitialized({ dataDir, logFile: options.logFile, timeoutMs: readyTimeoutMs, shutdownTimeoutMs });

  const socketPath = socketPathFor(dataDir);
  const fixedPort = options.port !== undefined && options.port !== 0 ? options.port : undefined;
  for (let attempt = 1; ; attempt++) {
    // The server's own lock next to the socket would make it refuse to start after a crash.
    rmSync(socketPath, { force: true });
    rmSync(`${socketPath}.lock`, { force: true });
    const port = fixedPort ?? (await getFreePort(HOST));
    const child = await SupervisedProcess.start({
      name: 'mariadbd',
      command: mariadbd,
      args: serverArgs(dataDir, socketPath, pidFile, port, options.durable ?? true),
      pidFile,
      log: openChildLog(options.logFile),
      shutdownTimeoutMs,
    });
    try {
      await waitUntilReady({
        name: 'mariadbd',
        child,
        probe: () => probeMariaDb(port, dataDir),
        timeoutMs: readyTimeoutMs,
      });
    } catch (err) {
      const portTaken = isLocalStackError(err, 'EXITED_EARLY') && looksLikePortInUse(err.message);
      if (fixedPort === undefined && portTaken && attempt < RANDOM_PORT_ATTEMPTS) continue;
      throw err;
    }
    return {
      pid: child.pid,
      host: HOST,
      port,
      socketPath,
      user: 'root',
      password: '',
      dataDir,
      exited: child.exited,
      stop: () => child.stop(),
    };
  }
}

/**
 * Ready means a real `SELECT 1` as root over TCP, answered by the server of this data directory
 * (another one could hold a fixed port while ours fails to bind).
 */
export async function probeMariaDb(port: number, dataDir: string): Promise<true | string> {
  let connection;
  try {
    connection = await createConnection({
      host: HOST,
      port,
      user: 'root',
      password: '',
      connectTimeout: PROBE_TIMEOUT_MS,
    });
  } catch (err) {
    // Not final: it may be another server on a fixed port while ours is failing to bind.
    if ((err as { code?: unknown }).code === 'ER_ACCESS_DENIED_ERROR') {
      return `root without a password is refused; was ${dataDir} created by another tool?`;
    }
    return err instanceof Error ? err.message : String(err);
  }
  try {
    const [rows] = await connection.query<RowDataPacket[]>('SELECT 1 AS ok, @@datadir AS datadir');
    const row = rows[0];
    if (row?.['ok'] !== 1) return 'SELECT 1 gave no row';
    return resolve(String(row['datadir'])) === dataDir ? true : `another server holds port ${port}`;
  } finally {
    connection.destroy();
  }
}
