/** The Perry compiler on this machine: its version for `worker_hello`, and updates on request. */
import { execFile, spawn } from 'node:child_process';
import { PERRY_VERSION_MAX_CHARS, PERRY_VERSION_PATTERN } from '@perry-hub/contracts';

/** `perry --version` without the `perry ` prefix, as the Rust workers send it; undefined if it fails. */
export function perryVersion(binary: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    execFile(binary, ['--version'], { timeout: 10_000 }, (err, stdout) => {
      if (err) return resolve(undefined);
      const v = String(stdout)
        .trim()
        .replace(/^perry\s+/i, '');
      const ok = v !== '' && v.length <= PERRY_VERSION_MAX_CHARS && new RegExp(PERRY_VERSION_PATTERN).test(v);
      resolve(ok ? v : undefined);
    });
  });
}

/** Run the configured update command; its exit status is the answer. */
export function runUpdate(command: string, timeoutMs = 30 * 60_000): Promise<{ ok: boolean; output: string }> {
  return new Promise((resolve) => {
    const child = spawn('/bin/sh', ['-c', command], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const keep = (d: Buffer) => (output = (output + d.toString('utf8')).slice(-2_000));
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (err) => (clearTimeout(timer), resolve({ ok: false, output: err.message })));
    child.on('close', (code) => (clearTimeout(timer), resolve({ ok: code === 0, output: output.trim() })));
  });
}
