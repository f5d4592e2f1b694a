// `perry-hub submit` against a real hub with a simulated Rust Linux worker: the project packed
// as perry publish packs it, the build followed live, the artifact downloaded and checked.
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { Parser } from 'tar';
import { test } from '@perry-hub/testkit';
import { spawn } from 'node:child_process';
import { BIN, ensureBuilt, ROOT } from '../support/hub-process.js';
import { withHub } from './dispatch-kit.js';
import { runCli } from './cli-support.js';

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
let work: string;

beforeAll(() => {
  ensureBuilt();
  work = mkdtempSync(join(tmpdir(), 'perry-hub-cli-submit-'));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** A small project, with what perry publish leaves out of the tarball. */
function project(name: string): string {
  const dir = join(work, name);
  mkdirSync(join(dir, 'src'), { recursive: true });
  mkdirSync(join(dir, 'node_modules', 'left-out'), { recursive: true });
  mkdirSync(join(dir, 'dist'), { recursive: true });
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name, version: '1.2.3' }));
  writeFileSync(join(dir, 'src', 'main.ts'), 'console.log("hello from perry");\n');
  writeFileSync(join(dir, 'node_modules', 'left-out', 'index.js'), 'nope');
  writeFileSync(join(dir, 'dist', 'old.bin'), 'old build');
  writeFileSync(join(dir, 'native.so'), 'binary');
  return dir;
}

async function tarEntries(gzipped: Buffer): Promise<string[]> {
  const names: string[] = [];
  const parser = new Parser({ onReadEntry: (entry) => (names.push(entry.path), entry.resume()) });
  await new Promise<void>((resolve, reject) => {
    Readable.from([gunzipSync(gzipped)])
      .pipe(parser)
      .on('end', resolve)
      .on('error', reject);
  });
  return names.sort();
}

describe('perry-hub submit', () => {
  test('builds a small project: exit 0, JSON that parses, the artifact saved with its SHA-256 matching', async ({
    natsUrl,
    prefix,
    database,
  }) => {
    await withHub({ natsUrl, prefix, database }, {}, async (s) => {
      await s.worker('linux', { name: 'cli-linux' });
      const licenseKey = await s.hub.registerLicense();
      const out = join(work, 'out-ok');
      const run = await runCli(['submit', project('hello'), '--target', 'linux', '--json', '--output', out], {
        PERRY_HUB_SERVER: s.hub.url,
        PERRY_LICENSE_KEY: licenseKey,
      });
      expect(run.stderr).toBe('');
      expect(run.code).toBe(0);
      const report = JSON.parse(run.stdout) as {
        job_id: string;
        outcome: string;
        success: boolean;
        targets: string[];
        artifacts: { name: string; size: number; sha256: string; path: string; verified: boolean }[];
      };
      expect(report).toMatchObject({ outcome: 'succeeded', success: true, targets: ['linux'] });
      expect(report.artifacts).toHaveLength(1);
      const artifact = report.artifacts[0]!;
      const saved = readFileSync(artifact.path);
      expect(artifact.verified).toBe(true);
      expect(sha256(saved)).toBe(artifact.sha256);
      // What the worker uploaded is what was saved.
      expect(s.history.uploads.map((u) => u.sha256)).toEqual([artifact.sha256]);
      // The simulated worker's artifact is its label and then the tarball it was given.
      const label = Buffer.from('[linux linux]');
      expect(saved.subarray(0, label.length)).toEqual(label);
      expect(await tarEntries(saved.subarray(label.length))).toEqual(['package.json', 'src/', 'src/main.ts']);
    });
  });

  test('a failed build exits 1 with its reason; --no-wait returns the job at once', async ({
    natsUrl,
    prefix,
    database,
  }) => {
    await withHub({ natsUrl, prefix, database }, {}, async (s) => {
      await s.worker('linux', {
        name: 'cli-linux-failing',
        script: (job) =>
          job.manifest.app_name === 'broken' ? { fail: 'compile error: missing semicolon' } : undefined,
      });
      const licenseKey = await s.hub.registerLicense();
      const env = { PERRY_HUB_SERVER: s.hub.url, PERRY_LICENSE_KEY: licenseKey };
      const failed = await runCli(['submit', project('broken'), '-t', 'linux', '--output', join(work, 'out-bad')], env);
      console.log(`$ perry-hub submit broken -t linux\n${failed.stdout}`);
      expect(failed.code).toBe(1);
      expect(failed.stdout).toMatch(/Build error \[[A-Z_]+\]: compile error: missing semicolon/);
      expect(failed.stdout).toContain('Build failed');

      const json = await runCli(['submit', project('broken'), '-t', 'linux', '--json', '--no-download'], env);
      expect(json.code).toBe(1);
      expect(JSON.parse(json.stdout)).toMatchObject({
        outcome: 'failed',
        success: false,
        error: { message: 'compile error: missing semicolon' },
      });

      const queued = await runCli(['submit', project('later'), '-t', 'linux', '--json', '--no-wait'], env);
      expect(queued.code).toBe(0);
      const accepted = JSON.parse(queued.stdout) as { job_id: string; outcome: string; position: number };
      expect(accepted.outcome).toBe('queued');
      expect(accepted.job_id).toMatch(/^[0-9a-f-]{36}$/);
    });
  });

  test('on a terminal: upload and download progress bars, coloured stage headers', async ({
    natsUrl,
    prefix,
    database,
  }) => {
    await withHub({ natsUrl, prefix, database }, {}, async (s) => {
      await s.worker('linux', { name: 'cli-linux-tty' });
      const out = join(work, 'out-tty');
      const command = [process.execPath, BIN, 'submit', project('tty'), '--target', 'linux', '--output', out]
        .map((a) => JSON.stringify(a))
        .join(' ');
      // util-linux `script` gives the command a pseudo-terminal and exits with its code. Not spawnSync:
      // the hub runs in this process and must keep answering.
      const licenseKey = await s.hub.registerLicense();
      const child = spawn('script', ['-qfec', command, '/dev/null'], {
        cwd: ROOT,
        stdio: ['pipe', 'pipe', 'pipe'],
        env: {
          PATH: process.env['PATH'] ?? '',
          HOME: process.env['HOME'] ?? '/root',
          TERM: 'xterm',
          PERRY_HUB_SERVER: s.hub.url,
          PERRY_LICENSE_KEY: licenseKey,
        },
      });
      let stdout = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      const status = await new Promise<number | null>((resolve) => child.on('exit', resolve));
      const run = { status, stdout };
      expect(run.status).toBe(0);
      const screen = run.stdout.replace(/\x1b(\[[0-9;?]*[A-Za-z]|[78])/g, ''); // eslint-disable-line no-control-regex
      expect(screen).toMatch(/Uploading\s+\[[█░]+\] 100%/);
      expect(screen).toMatch(/Downloading \[[█░]+\] 100%/);
      expect(screen).toContain('── compiling ──');
      expect(run.stdout).toContain('\x1b[36;1m── compiling ──');
      expect(screen).toMatch(/Saved .*out-tty\/\S+ \(.+\), SHA-256 verified/);
    });
  });

  test('usage mistakes exit 2, an unreachable hub or a refused credential 3', async () => {
    const noTarget = await runCli(['submit', work]);
    expect(noTarget.code).toBe(2);
    expect(noTarget.stderr).toContain("required option '-t, --target <target...>' not specified");
    const noDir = await runCli(['submit', join(work, 'nope'), '-t', 'linux'], { PERRY_LICENSE_KEY: 'x' });
    expect(noDir.code).toBe(2);
    expect(noDir.stderr).toContain('is not a directory');
    const noKey = await runCli(['submit', work, '-t', 'linux']);
    expect(noKey.code).toBe(2);
    expect(noKey.stderr).toContain('PERRY_LICENSE_KEY');
    const down = await runCli(['submit', project('down'), '-t', 'linux', '--server', 'http://127.0.0.1:1'], {
      PERRY_LICENSE_KEY: 'FREE-0000-0000-0000',
    });
    expect(down.code).toBe(3);
    const downJson = await runCli(
      ['submit', project('down'), '-t', 'linux', '--json', '--server', 'http://127.0.0.1:1'],
      {
        PERRY_LICENSE_KEY: 'FREE-0000-0000-0000',
      },
    );
    expect(downJson.code).toBe(3);
    expect(JSON.parse(downJson.stdout)).toMatchObject({ error: { exit_code: 3 } });
    expect(down.stderr).toMatch(/cannot reach the hub at http:\/\/127\.0\.0\.1:1 \(ECONNREFUSED\)/);
    expect(down.stderr).not.toMatch(/\n\s+at /);
  });
});
