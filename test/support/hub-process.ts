/**
 * Runs the real `perry-hub` command as a child process, the way an operator would, and waits for
 * it to say it is up.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { getFreePorts } from '@perry-hub/localstack';
import { HUB_NODE_FLAGS } from '@perry-hub/cli/node-flags';

export const ROOT = join(import.meta.dirname, '..', '..');
export const BIN = join(ROOT, 'libs', 'cli', 'dist', 'bin.js');

/** The command runs from the build; make sure it is current (incremental, quick when it is). */
export function ensureBuilt(): void {
  const r = spawnSync(join(ROOT, 'node_modules', '.bin', 'tsc'), ['-b'], { cwd: ROOT, stdio: 'inherit' });
  if (r.status !== 0) throw new Error('tsc -b failed');
}

export interface HubProcess {
  readonly child: ChildProcess;
  readonly output: () => string;
  readonly exited: Promise<number | null>;
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<string>;
}

export function runHub(args: string[], env: Record<string, string>): HubProcess {
  const child = spawn(process.execPath, [...HUB_NODE_FLAGS, BIN, ...args], {
    cwd: ROOT,
    env: { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? '/root', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return {
    child,
    output: () => out,
    exited,
    waitFor: async (pattern, timeoutMs = 60_000) => {
      const deadline = Date.now() + timeoutMs;
      while (Date.now() < deadline) {
        const m = pattern.exec(out);
        if (m) return m[0];
        if (child.exitCode !== null) throw new Error(`perry-hub exited (${child.exitCode}) before ${pattern}:\n${out}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error(`timed out waiting for ${pattern}:\n${out}`);
    },
  };
}

export interface LocalPorts {
  http: number;
  ws: number;
  nats: number;
  natsMonitor: number;
  db: number;
}

export async function freePorts(): Promise<LocalPorts> {
  const [http, ws, nats, natsMonitor, db] = (await getFreePorts(5)) as [number, number, number, number, number];
  return { http, ws, nats, natsMonitor, db };
}

export function localEnv(dataDir: string, ports: LocalPorts): Record<string, string> {
  return {
    PERRY_HUB_DATA_DIR: dataDir,
    PERRY_HUB_HTTP_PORT: String(ports.http),
    PERRY_HUB_WS_PORT: String(ports.ws),
    PERRY_HUB_LOCAL_NATS_PORT: String(ports.nats),
    PERRY_HUB_LOCAL_NATS_MONITOR_PORT: String(ports.natsMonitor),
    PERRY_HUB_LOCAL_DB_PORT: String(ports.db),
    PERRY_HUB_LOG_LEVEL: 'warn',
  };
}

/** Server pids the local stack recorded in its data directory. */
export function recordedServerPids(dataDir: string): number[] {
  return [join(dataDir, 'nats', 'nats-server.pid'), join(dataDir, 'mariadb', 'mariadbd.pid')]
    .filter((f) => existsSync(f))
    .map((f) => Number(readFileSync(f, 'utf8').trim()));
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export async function waitUntil(check: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (check()) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return check();
}
