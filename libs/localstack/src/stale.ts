import { readdirSync, readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { LocalStackError } from './errors.js';
import { readPidFile } from './supervise.js';

/** The argv of a process, or undefined when it is gone or unreadable (no /proc off Linux). */
function readArgv(pid: number): string[] | undefined {
  try {
    const raw = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return raw.split('\0').filter((arg, i, all) => arg !== '' || i < all.length - 1);
  } catch {
    return undefined;
  }
}

/**
 * Alive and not a zombie. A killed orphan stays a zombie until its reaper waits for it, and some
 * container inits never do; a zombie holds no files or ports, so it counts as gone.
 */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return process.platform !== 'linux';
  }
}

function isOurServer(pid: number, binaryName: string, marker: string): boolean {
  const argv = readArgv(pid);
  if (argv === undefined) return false;
  const program = argv[0];
  return program !== undefined && basename(program) === binaryName && argv.includes(marker);
}

/** Every live process running `binaryName` with `marker` among its arguments. */
function scanProc(binaryName: string, marker: string): number[] {
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return [];
  }
  return entries
    .filter((entry) => /^\d+$/.test(entry))
    .map(Number)
    .filter((pid) => pid !== process.pid && isOurServer(pid, binaryName, marker));
}

export interface StaleOptions {
  /** The pid recorded by the previous run, if any. */
  pidFile: string;
  binaryName: string;
  /** An argument only a server of this data directory has (its config file, `--datadir=...`). */
  marker: string;
  shutdownTimeoutMs: number;
}

/**
 * Stops a server left running on this data directory by a run that crashed in a way the watchdog
 * could not handle (the watchdog itself SIGKILLed). Two servers on one InnoDB or JetStream store
 * would fight over its files, so this must happen before every start.
 */
export async function terminateStale(options: StaleOptions): Promise<void> {
  const pids = new Set(scanProc(options.binaryName, options.marker));
  const recorded = readPidFile(options.pidFile);
  if (recorded !== undefined && isAlive(recorded) && isOurServer(recorded, options.binaryName, options.marker)) {
    pids.add(recorded);
  }
  if (pids.size === 0) return;
  for (const pid of pids) signal(pid, 'SIGTERM');
  if (await waitGone(pids, options.shutdownTimeoutMs)) return;
  for (const pid of pids) signal(pid, 'SIGKILL');
  if (await waitGone(pids, 5_000)) return;
  throw new LocalStackError(
    'STALE_PROCESS',
    `${options.binaryName} from an earlier run (pid ${[...pids].join(', ')}) still holds ${options.marker} and would not die`,
  );
}

async function waitGone(pids: Set<number>, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if ([...pids].every((pid) => !isAlive(pid))) return true;
    if (Date.now() > deadline) return false;
    await sleep(50);
  }
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // Already gone.
  }
}
