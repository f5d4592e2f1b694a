/**
 * Runs the real `perry-hub` command (the built bin) as a user or a CI script would, with stdout
 * and stderr apart so `--json` output can be parsed.
 */
import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BIN, ROOT } from '../support/hub-process.js';

/**
 * The data directory of a run that names none: one that does not exist, so that a hub started by
 * hand in the checkout (`npm start` keeps its secrets in `.perry-hub/`) does not lend the command
 * its secrets.
 */
const NO_LOCAL_HUB = join(tmpdir(), `perry-hub-cli-no-local-hub-${process.pid}`);

export interface CliRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export function runCli(args: string[], env: Record<string, string> = {}, timeoutMs = 60_000): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd: ROOT,
      env: {
        PATH: process.env['PATH'] ?? '',
        HOME: process.env['HOME'] ?? '/root',
        PERRY_HUB_DATA_DIR: NO_LOCAL_HUB,
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`perry-hub ${args.join(' ')} did not end in ${timeoutMs} ms:\n${stdout}\n${stderr}`));
    }, timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}
