import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildServer } from '@perry-hub/localstack';

/** Every temp dir of a process lives under `<tmpdir>/perry-hub-test-<pid>-<random>`. */
const ROOT_PREFIX = 'perry-hub-test-';

/**
 * Removes the process's temp root once the process is gone, however it died. Vitest ends a
 * worker with SIGTERM (SIGKILL 500 ms later), which runs no 'exit' handler; like the servers'
 * watchdogs, this waits for EOF on a pipe only we hold. The servers are dying at the same time
 * and may still write, hence the retries.
 */
const REAPER_SCRIPT = `
while read -r line; do :; done
i=0
while [ -e "$1" ] && [ "$i" -lt 100 ]; do
  rm -rf -- "$1" 2>/dev/null
  [ -e "$1" ] && sleep 0.2
  i=$((i + 1))
done
`;

let root: string | undefined;
const running = new Set<ChildServer>();

/** This process's temp root, created (with its reaper) on first use. */
export function tempRoot(): string {
  if (root !== undefined) return root;
  sweepDeadRoots();
  root = mkdtempSync(join(tmpdir(), `${ROOT_PREFIX}${process.pid}-`));
  startReaper(root);
  process.once('exit', cleanupSync);
  return root;
}

/** A fresh directory under the temp root. */
export function newTempDir(label: string): string {
  const parent = tempRoot();
  mkdirSync(parent, { recursive: true });
  return mkdtempSync(join(parent, `${label}-`));
}

/** Servers still running at exit are SIGKILLed: their data is throwaway. */
export function trackServer(server: ChildServer): void {
  running.add(server);
  void server.exited.then(() => running.delete(server));
}

function cleanupSync(): void {
  for (const server of running) {
    try {
      process.kill(server.pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
  if (root !== undefined) rmSync(root, { recursive: true, force: true, maxRetries: 3 });
}

function startReaper(dir: string): void {
  const reaper = spawn('/bin/sh', ['-c', REAPER_SCRIPT, 'perry-hub-test-reaper', dir], {
    stdio: ['pipe', 'ignore', 'ignore'],
    // Its own session: a Ctrl-C to the test run must not kill it before it has cleaned up.
    detached: true,
  });
  reaper.on('error', () => {});
  reaper.stdin?.on('error', () => {});
  reaper.unref();
  (reaper.stdin as Socket | null)?.unref();
}

/** Roots of processes that died before their reaper could run (e.g. the machine rebooted). */
function sweepDeadRoots(): void {
  let entries: string[];
  try {
    entries = readdirSync(tmpdir());
  } catch {
    return;
  }
  for (const entry of entries) {
    const match = /^perry-hub-test-(\d+)-/.exec(entry);
    const pid = Number(match?.[1]);
    if (!match || !Number.isInteger(pid) || isAlive(pid)) continue;
    rmSync(join(tmpdir(), entry), { recursive: true, force: true });
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
