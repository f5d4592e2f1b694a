// Below the hub: the command runner (wrapper, leftovers killed, line splitting) and the transfers
// against an HTTP server that behaves like the original hub (base64 only, 415 for raw uploads).
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCommand, type OutputEvent } from '../src/run.js';
import { downloadTarball } from '../src/tarball.js';
import { collectArtifacts, uploadArtifact, type UploadMode } from '../src/artifacts.js';

const dir = mkdtempSync(join(tmpdir(), 'perry-worker-run-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const alive = (pid: number) => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
};

async function run(command: string, wrapper: string[] = []) {
  const events: OutputEvent[] = [];
  const outcome = await runCommand({
    command,
    cwd: dir,
    env: { PATH: process.env['PATH'] ?? '' },
    wrapper,
    killGraceMs: 500,
    signal: new AbortController().signal,
    onOutput: (e) => events.push(e),
  });
  return { outcome, events };
}

describe('build commands', () => {
  it('run under the wrapper; lines split across chunks and streams; no trailing newline needed', async () => {
    const r = await run('echo "wrapped=$WRAPPED"; printf "a"; sleep 0.1; printf "b\\nc"; echo err >&2', [
      'env',
      'WRAPPED=yes',
    ]);
    expect(r.outcome).toEqual({ kind: 'exited', code: 0, signal: null });
    expect(
      r.events.filter((e) => e.kind === 'log' && e.stream === 'stdout').map((e) => (e as { line: string }).line),
    ).toEqual(['wrapped=yes', 'ab', 'c']);
    expect(r.events).toContainEqual({ kind: 'log', line: 'err', stream: 'stderr' });
  });

  it('what a finished command left running in its group is killed', async () => {
    const r = await run('sleep 300 > /dev/null 2>&1 &\necho "left $!"');
    const pid = Number((r.events[0] as { line: string }).line.split(' ')[1]);
    expect(pid).toBeGreaterThan(0);
    await expect.poll(() => alive(pid), { timeout: 5_000 }).toBe(false);
  });

  it('a command that cannot start is reported, not thrown', async () => {
    const r = await run('true', [join(dir, 'no-such-wrapper')]);
    expect(r.outcome.kind).toBe('failed-to-start');
  });
});

describe('transfers with an original hub (base64 only)', () => {
  it('downloads base64 text, and uploads base64 after a 415 for raw bytes, with the SHA-256', async () => {
    const project = Buffer.from([0x1f, 0x8b, 8, 0, 1, 2, 3, 255, 254, 0]);
    const uploads: { type: string; headers: IncomingMessage['headers']; body: Buffer }[] = [];
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        if (req.headers.authorization !== 'Bearer T') return res.writeHead(403).end('{"error":{"code":"FORBIDDEN"}}');
        if (req.method === 'GET')
          return res.writeHead(200, { 'content-type': 'text/plain' }).end(`${project.toString('base64')}\n`);
        const type = req.headers['content-type'] ?? '';
        if (type !== 'text/plain') return res.writeHead(415).end('{"error":"unsupported media type"}');
        uploads.push({ type, headers: req.headers, body: Buffer.concat(chunks) });
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"token":"t","download_url":"x","size":1}');
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const file = join(dir, 'project.tar');
      const got = await downloadTarball(`${base}/api/v1/tarball/j`, 'T', file, 1024, new AbortController().signal);
      expect(got).toEqual({ bytes: project.length, encoding: 'base64' });
      expect(readFileSync(file)).toEqual(project);

      const out = join(dir, 'out');
      const { mkdirSync } = await import('node:fs');
      mkdirSync(out);
      const bytes = Buffer.from(Array.from({ length: 1000 }, (_, i) => i % 256));
      writeFileSync(join(out, 'app.bin'), bytes);
      const [artifact] = await collectArtifacts(out, ['**']);
      expect(artifact!.sha256).toBe(createHash('sha256').update(bytes).digest('hex'));
      const mode: UploadMode = { raw: undefined };
      const to = { url: `${base}/api/v1/artifact/upload/j`, token: 'T', target: 'linux' };
      expect(await uploadArtifact(artifact!, to, mode, new AbortController().signal)).toBeUndefined();
      expect(mode.raw).toBe(false); // remembered: the next upload goes as base64 at once
      expect(Buffer.from(uploads[0]!.body.toString(), 'base64')).toEqual(bytes);
      expect(uploads[0]!.headers['x-artifact-sha256']).toBe(artifact!.sha256);
      expect(uploads[0]!.headers['x-artifact-name']).toBe('app.bin');
      expect(
        await uploadArtifact(artifact!, { ...to, token: 'stale' }, mode, new AbortController().signal),
      ).toMatchObject({ kind: 'stale' });
    } finally {
      server.close();
    }
  });
});
