import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

const supportDir = dirname(fileURLToPath(import.meta.url));

/** Gone, or a zombie waiting for a reaper (it holds no files or ports). */
export function isGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return true;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

export async function waitGone(pids: readonly number[], timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (pids.every(isGone)) return true;
    await sleep(50);
  }
  return pids.every(isGone);
}

/** The parent pid of a process, from /proc. */
export function parentPid(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[1]);
}

export function makeTempDir(label: string): { dir: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), `perry-hub-localstack-${label}-`));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true, maxRetries: 5 }) };
}

export interface ParentHandles {
  nats: { pid: number; url: string; port: number };
  mariadb?: { pid: number; port: number };
}

/** Starts test/support/parent.ts as a separate node process and waits for its handles. */
export async function startParent(
  natsDir: string,
  mariadbDir: string | undefined,
  logDir: string,
): Promise<{ child: ChildProcess; handles: ParentHandles }> {
  const child = spawn(
    process.execPath,
    ['--import', './register-ts.mjs', 'parent.ts', natsDir, mariadbDir ?? '-', logDir],
    { cwd: supportDir, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const lines = createInterface({ input: child.stdout! });
  const exited = new Promise<never>((_, reject) =>
    child.once('exit', (code) => reject(new Error(`parent exited (${code}) before ready:\n${stderr}`))),
  );
  const firstLine = new Promise<string>((resolve) => lines.once('line', resolve));
  const line = await Promise.race([firstLine, exited]);
  return { child, handles: JSON.parse(line) as ParentHandles };
}
