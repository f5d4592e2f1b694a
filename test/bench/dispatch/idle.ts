/**
 * Memory of idle connections: the hub's RSS before and after 10,000 workers said hello, next to
 * a bare `ws` server's RSS before and after 10,000 plain connections. The connections come from a
 * child process (test/bench/dispatch/conns.ts), and each server is a process of its own.
 * Each side holds one descriptor per socket: `ulimit -n` must exceed 10,000 in the shell that
 * runs the benchmark (20,000 on the bench machine); with less, the table shows how many opened.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { cpuSecs, rssMiB, track, type Hub } from './stack.js';
import { sleep, waitUpTo } from './stats.js';
import { status } from './submit.js';

const REGISTER = join(import.meta.dirname, '..', 'ts-register.mjs');
const SETTLE_MS = 3_000;

function spawnTs(file: string, args: string[]): { child: ChildProcess; lines: string[] } {
  const child = track(
    spawn(process.execPath, ['--import', REGISTER, join(import.meta.dirname, file), ...args], {
      stdio: ['ignore', 'pipe', 'inherit'],
    }),
  );
  const lines: string[] = [];
  child.stdout!.on('data', (d: Buffer) => lines.push(...d.toString().split('\n').filter(Boolean)));
  return { child, lines };
}

async function line(p: { child: ChildProcess; lines: string[] }, re: RegExp, timeoutMs: number): Promise<string> {
  let found: string | undefined;
  await waitUpTo(() => (found = p.lines.find((l) => re.test(l))) !== undefined || p.child.exitCode !== null, timeoutMs);
  if (found === undefined) throw new Error(`child did not print ${re} (got: ${p.lines.slice(-3).join(' | ')})`);
  return found;
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exited;
}

export interface IdleResult {
  readonly addedMiB: number;
  readonly beforeMiB: number;
  readonly afterMiB: number;
  readonly opened: number;
  /** Hub CPU while the connections were idle, percent of one core. */
  readonly idleCpuPercent: number;
}

async function openConnections(url: string, count: number, mode: 'hello' | 'plain') {
  const conns = spawnTs('conns.ts', [url, String(count), mode]);
  const ready = await line(conns, /^ready /, 180_000);
  return { conns, opened: Number(/^ready (\d+)/.exec(ready)![1]) };
}

/** The baseline: a bare `ws` server in a child process. */
export async function bareWsMemory(count: number): Promise<IdleResult> {
  const server = spawnTs('ws-server.ts', []);
  try {
    const port = Number(/^port (\d+)/.exec(await line(server, /^port /, 30_000))![1]);
    await sleep(SETTLE_MS);
    const beforeMiB = rssMiB(server.child.pid);
    const { conns, opened } = await openConnections(`ws://127.0.0.1:${port}`, count, 'plain');
    await sleep(SETTLE_MS);
    const afterMiB = rssMiB(server.child.pid);
    await stopChild(conns.child);
    return { beforeMiB, afterMiB, addedMiB: afterMiB - beforeMiB, opened, idleCpuPercent: NaN };
  } finally {
    await stopChild(server.child);
  }
}

/** 10,000 workers that say hello and then nothing; waits until the hub counts them, and gone again. */
export async function hubWorkerMemory(hub: Hub, count: number): Promise<IdleResult> {
  const pid = hub.child.pid;
  const base = (await status(hub)).connected_workers;
  await sleep(SETTLE_MS);
  const beforeMiB = rssMiB(pid);
  const { conns, opened } = await openConnections(hub.workerUrl, count, 'hello');
  try {
    await waitUpTo(async () => (await status(hub)).connected_workers >= base + opened, 120_000, 500);
    await sleep(SETTLE_MS);
    const afterMiB = rssMiB(pid);
    const cpu0 = cpuSecs(pid);
    const t0 = performance.now();
    await sleep(5_000);
    const idleCpuPercent = ((cpuSecs(pid) - cpu0) / ((performance.now() - t0) / 1000)) * 100;
    return { beforeMiB, afterMiB, addedMiB: afterMiB - beforeMiB, opened, idleCpuPercent };
  } finally {
    await stopChild(conns.child);
    await waitUpTo(async () => (await status(hub)).connected_workers <= base, 120_000, 500);
  }
}
