import { existsSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { findBinary } from './binaries.js';
import { LocalStackError } from './errors.js';
import { openChildLog } from './log-tail.js';
import { terminateStale } from './stale.js';
import { SupervisedProcess } from './supervise.js';

/** The system schema; its presence is what "initialized" means. */
const SYSTEM_DIR = 'mysql';

export function isInitialized(dataDir: string): boolean {
  return existsSync(join(dataDir, SYSTEM_DIR));
}

export interface InitOptions {
  dataDir: string;
  logFile: string | undefined;
  timeoutMs: number;
  shutdownTimeoutMs: number;
}

/**
 * A temp dir beside the data dir (inside, it would be listed as a database). MariaDB servers
 * sharing one tmpdir collide on their temporary tables' names: of 6 concurrent
 * mariadb-install-db runs on this kind of machine, one typically aborts with "Unknown table
 * 'mysql.tmp_user_sys'" — parallel test workers each start one.
 */
export function privateTmpDir(dataDir: string): string {
  const dir = `${dataDir}.tmp`;
  mkdirSync(dir, { recursive: true });
  return dir;
}

/**
 * Creates the system tables when the data directory has none. The install runs into a sibling
 * scratch directory whose entries are then renamed in, the system schema last: a crash at any
 * point leaves either no `mysql/` (the next start simply installs again) or a complete directory.
 */
export async function ensureInitialized(options: InitOptions): Promise<void> {
  const { dataDir } = options;
  if (isInitialized(dataDir)) return;
  const installDb = findBinary('mariadb-install-db');
  const scratchDir = `${dataDir}.init-tmp`;
  const pidFile = `${dataDir}.init-tmp.pid`;
  // A bootstrap server from a crashed install may still be writing into the scratch directory.
  await terminateStale({
    pidFile,
    binaryName: 'mariadbd',
    marker: `--datadir=${scratchDir}`,
    shutdownTimeoutMs: options.shutdownTimeoutMs,
  });
  rmSync(scratchDir, { recursive: true, force: true });

  const args = [
    '--no-defaults',
    `--datadir=${scratchDir}`,
    `--tmpdir=${privateTmpDir(scratchDir)}`,
    '--auth-root-authentication-method=normal',
    '--skip-test-db',
    // Otherwise it resolves the host name, which hangs on machines with broken DNS.
    '--skip-name-resolve',
  ];
  const child = await SupervisedProcess.start({
    name: 'mariadb-install-db',
    command: installDb,
    args,
    pidFile,
    log: openChildLog(options.logFile),
    shutdownTimeoutMs: options.shutdownTimeoutMs,
  });
  // Unref'd: a pending deadline must not hold the process open long after the install finished.
  const deadline = sleep(options.timeoutMs, 'timeout' as const, { ref: false });
  const code = await Promise.race([child.exited, deadline]);
  await child.stop();
  rmSync(pidFile, { force: true });
  if (code !== 0 || !existsSync(join(scratchDir, SYSTEM_DIR))) {
    const what = code === 'timeout' ? `did not finish within ${options.timeoutMs} ms` : `failed (code ${code})`;
    throw new LocalStackError(
      'INIT_FAILED',
      `mariadb-install-db for ${dataDir} ${what}. Last log lines:\n${child.tail()}`,
    );
  }

  mkdirSync(dataDir, { recursive: true });
  const entries = readdirSync(scratchDir).filter((entry) => entry !== SYSTEM_DIR);
  for (const entry of [...entries, SYSTEM_DIR]) {
    // Leftovers of an earlier interrupted move; safe to replace since `mysql/` was absent.
    rmSync(join(dataDir, entry), { recursive: true, force: true });
    renameSync(join(scratchDir, entry), join(dataDir, entry));
  }
  rmSync(scratchDir, { recursive: true, force: true });
  rmSync(privateTmpDir(scratchDir), { recursive: true, force: true });
}
