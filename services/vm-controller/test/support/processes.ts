/**
 * The vm-controller as a real process (`node services/vm-controller/dist/main.js`), as it runs in
 * production: NODE_EXTRA_CA_CERTS is read only at process start, and a fault test must be able
 * to `kill -9` it. A preloaded watchdog ends the child when the test process goes away (its
 * stdin closes), so no controller outlives a crashed test run.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const REPO_ROOT = resolve(fileURLToPath(new URL('.', import.meta.url)), '../../../..');
const MAIN = join(REPO_ROOT, 'services/vm-controller/dist/main.js');

/** Compile the controller and the libraries it uses (incremental: quick when up to date). */
export function buildController(): void {
  execFileSync(process.execPath, [join(REPO_ROOT, 'node_modules/typescript/bin/tsc'), '-b', 'services/vm-controller'], {
    cwd: REPO_ROOT,
    stdio: 'pipe',
  });
}

// Unref'd: it must notice the parent going away without keeping a stopped controller alive.
const WATCHDOG = [
  "process.stdin.on('end', () => process.exit(1));",
  "process.stdin.on('error', () => process.exit(1));",
  'process.stdin.resume();',
  'process.stdin.unref();',
].join('\n');

export interface ControllerProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  /** Everything it logged (pino JSON lines). */
  output(): string;
  readonly exited: Promise<number | null>;
  kill9(): Promise<void>;
  /** SIGTERM, the orderly stop. */
  stop(): Promise<void>;
}

export function spawnController(env: Record<string, string>): ControllerProcess {
  const dir = mkdtempSync(join(tmpdir(), 'perry-hub-vmc-'));
  const watchdog = join(dir, 'watchdog.mjs');
  writeFileSync(watchdog, WATCHDOG);
  const child = spawn(process.execPath, ['--import', pathToFileURL(watchdog).href, MAIN], {
    cwd: REPO_ROOT,
    env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout?.on('data', (c: Buffer) => (out += c.toString('utf8')));
  child.stderr?.on('data', (c: Buffer) => (out += c.toString('utf8')));
  const exited = new Promise<number | null>((resolveExit) =>
    child.once('exit', (code) => {
      rmSync(dir, { recursive: true, force: true });
      resolveExit(code);
    }),
  );
  const signal = async (sig: NodeJS.Signals) => {
    if (child.exitCode === null && child.signalCode === null) child.kill(sig);
    await exited;
  };
  return {
    child,
    pid: child.pid ?? -1,
    output: () => out,
    exited,
    kill9: () => signal('SIGKILL'),
    stop: () => signal('SIGTERM'),
  };
}
