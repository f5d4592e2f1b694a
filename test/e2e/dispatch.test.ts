// The whole hub driven by clients that speak exactly like the Rust CLI and workers.
// More in dispatch-two-stage, dispatch-failures and dispatch-queue.test.ts.
import { createHash } from 'node:crypto';
import { describe, expect } from 'vitest';
import { WebSocket } from 'ws';
import { test } from '@perry-hub/testkit';
import { perryPublish, sniffDownload } from '../support/perry-cli.js';
import { expectedArtifact } from '../support/rust-worker-jobs.js';
import { WorkerHistory, linuxWorker, type SimulatedWorker } from '../support/rust-workers.js';
import { CREDENTIALS, MANIFEST, WORKER_SECRET, startTestHub, tarball } from '../support/test-hub.js';
import { ofType, until, withHub } from './dispatch-kit.js';

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const AUTH_FAILED = '{"type":"error","code":"AUTH_FAILED","message":"Invalid worker secret"}';
const SPENT = { error: { code: 'ARTIFACT_NOT_FOUND', message: 'Artifact not found or expired' } };
/** Longer than the gateway waits before it sends a finished job's synthetic `complete` (2 s). */
const QUIET_MS = 2_500;

describe('dispatch end to end', () => {
  test('a Linux build: job_assign, live stages, artifact download matching its SHA-256, token spent after', async ({
    natsUrl,
    prefix,
    database,
  }) => {
    const hub = await startTestHub({ natsUrl, prefix, database });
    const workers: SimulatedWorker[] = [];
    try {
      const history = new WorkerHistory();
      const linux = linuxWorker({
        url: hub.workerUrl,
        secret: WORKER_SECRET,
        name: 'kamatera-fra',
        history,
        reconnectDelayMs: 200,
      });
      workers.push(linux);
      await linux.connected();
      const licenseKey = await hub.registerLicense();
      const input = tarball('linux');
      const result = await perryPublish({
        server: hub.url,
        manifest: { ...MANIFEST, targets: ['linux'] },
        credentials: CREDENTIALS,
        tarball: input,
        licenseKey,
        timeoutMs: 30_000,
      });
      expect(result.reason).toBe('Ready');
      expect(result.exitCode).toBe(0);
      expect(result.position).toBe(1);
      expect(result.artifact?.bytes).toEqual(expectedArtifact('linux', 'linux', input));
      const ready = result.messages.find((m) => m.type === 'artifact_ready') as {
        download_url: string;
        sha256: string;
      };
      const { createHash } = await import('node:crypto');
      expect(createHash('sha256').update(result.artifact!.bytes).digest('hex')).toBe(ready.sha256);
      const again = await fetch(ready.download_url);
      expect(again.status).toBe(404);
      expect(await again.json()).toEqual({
        error: { code: 'ARTIFACT_NOT_FOUND', message: 'Artifact not found or expired' },
      });
    } finally {
      for (const w of workers) await w.stop();
      await hub.stop();
    }
  });

  test('a subscriber that connects after the build finished gets its whole history once, and can still download', async ({
    natsUrl,
    prefix,
    database,
  }) => {
    await withHub({ natsUrl, prefix, database }, {}, async (s) => {
      await s.worker('linux', { name: 'kamatera-fra' });
      const licenseKey = await s.hub.registerLicense();
      const input = tarball('late subscriber');
      const cli = await s.publish(['linux'], { licenseKey, tarball: input, download: false }).result;
      expect(cli.reason).toBe('Ready');
      const jobId = cli.jobId!;
      expect(await s.status(jobId)).toEqual({ status: 'completed', position: 0 });

      const late = await s.watch(jobId);
      await late.next('complete', ofType('complete'));
      // Exactly once: nothing follows the replayed `complete`, not even the synthetic one.
      const count = late.frames.length;
      await new Promise((resolve) => setTimeout(resolve, QUIET_MS));
      expect(late.frames).toHaveLength(count);
      expect(late.frames[0]).toBe(`{"type":"job_created","job_id":"${jobId}","position":0,"estimated_wait_secs":0}`);
      expect(late.frames.slice(1)).toEqual(cli.transcript.slice(1));
      const kinds = late.parsed().map((m) => (m['type'] === 'stage' ? `stage ${String(m['stage'])}` : m['type']));
      expect(kinds.filter((k) => k !== 'queue_update')).toEqual([
        'job_created',
        'stage extracting',
        'progress',
        'stage compiling',
        'log',
        'log',
        'log',
        'progress',
        'stage packaging',
        'stage uploading',
        'artifact_ready',
        'complete',
      ]);
      expect(new Set(late.frames).size).toBe(late.frames.length);

      const ready = late.parsed().find(ofType('artifact_ready'))!;
      const res = await fetch(String(ready['download_url']));
      expect(res.status).toBe(200);
      const bytes = sniffDownload(Buffer.from(await res.arrayBuffer()));
      expect(bytes).toEqual(expectedArtifact('linux', 'linux', input));
      expect(sha256(bytes)).toBe(ready['sha256']);
    });
  });

  test('downloads for new clients: raw bytes with Accept: application/octet-stream, and a Range-resumed download', async ({
    natsUrl,
    prefix,
    database,
  }) => {
    await withHub({ natsUrl, prefix, database }, {}, async (s) => {
      await s.worker('linux', { name: 'kamatera-fra', maxConcurrent: 2 });
      const apiToken = await s.hub.account('pro');
      const inputs = [tarball('raw download'), tarball('resumed download')];
      const [rawRun, resumedRun] = await Promise.all(
        inputs.map((input) => s.publish(['linux'], { apiToken, tarball: input, download: false }).result),
      );
      const readyOf = (r: typeof rawRun) => {
        const m = r!.messages.find(ofType('artifact_ready')) as { download_url: string; sha256: string };
        return { url: m.download_url, sha256: m.sha256 };
      };
      const raw = { accept: 'application/octet-stream' };

      const whole = expectedArtifact('linux', 'linux', inputs[0]!);
      const first = readyOf(rawRun);
      // A HEAD (a link checker, curl -I) gets the GET's headers and spends nothing.
      for (const headers of [raw, {}]) {
        const checked = await fetch(first.url, { method: 'HEAD', headers });
        expect(checked.status).toBe(200);
        expect(checked.headers.get('content-length')).toBe(
          String('accept' in headers ? whole.length : 4 * Math.ceil(whole.length / 3)),
        );
        expect(checked.headers.get('content-disposition')).toContain('attachment');
      }
      const res = await fetch(first.url, { headers: raw });
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toBe('application/octet-stream');
      expect(res.headers.get('accept-ranges')).toBe('bytes');
      expect(res.headers.get('content-length')).toBe(String(whole.length));
      const body = Buffer.from(await res.arrayBuffer());
      expect(body).toEqual(whole);
      expect(sha256(body)).toBe(first.sha256);
      const again = await fetch(first.url, { headers: raw });
      expect(again.status).toBe(404);
      expect(await again.json()).toEqual(SPENT);

      const resumed = expectedArtifact('linux', 'linux', inputs[1]!);
      const second = readyOf(resumedRun);
      const head = await fetch(second.url, { headers: { ...raw, range: 'bytes=0-9' } });
      expect(head.status).toBe(206);
      expect(head.headers.get('content-range')).toBe(`bytes 0-9/${resumed.length}`);
      const part1 = Buffer.from(await head.arrayBuffer());
      expect(part1).toEqual(resumed.subarray(0, 10));
      const rest = await fetch(second.url, { headers: { ...raw, range: 'bytes=10-' } });
      expect(rest.status).toBe(206);
      expect(rest.headers.get('content-range')).toBe(`bytes 10-${resumed.length - 1}/${resumed.length}`);
      const part2 = Buffer.from(await rest.arrayBuffer());
      expect(sha256(Buffer.concat([part1, part2]))).toBe(second.sha256);
      expect(Buffer.concat([part1, part2])).toEqual(resumed);
      // Spent once the last byte went out (recorded right after the response).
      await until('the resumed download to be spent', async () => {
        const r = await fetch(second.url, { headers: { ...raw, range: 'bytes=0-' } });
        return r.status === 404 && (await r.json());
      }).then((body) => expect(body).toEqual(SPENT));
    });
  });

  test('a wrong or missing worker secret is refused with AUTH_FAILED and a close', async ({
    natsUrl,
    prefix,
    database,
  }) => {
    await withHub({ natsUrl, prefix, database }, {}, async (s) => {
      // Byte for byte, on a raw socket: the frame, then the close.
      const ws = new WebSocket(s.hub.workerUrl, { perMessageDeflate: false });
      const frames: string[] = [];
      ws.on('message', (data: Buffer) => frames.push(data.toString('utf8')));
      const closed = new Promise<number>((resolve) => ws.on('close', (code: number) => resolve(code)));
      await new Promise((resolve) => ws.once('open', resolve));
      ws.send(
        '{"type":"worker_hello","capabilities":["linux","android","windows","ios","macos","tvos"],"name":"impostor","secret":"wrong","perry_version":"0.5.14","max_concurrent":2}',
      );
      expect(await closed).toBe(1000);
      expect(frames).toEqual([AUTH_FAILED]);

      // The Rust workers: refused on every (re)connection, never registered.
      const wrong = s.spawn('windows', { name: 'wrong-secret', secret: 'not-s3cr3t', reconnectDelayMs: 100 });
      const none = s.spawn('linux', { name: 'no-secret', secret: undefined, reconnectDelayMs: 100 });
      for (const w of [wrong, none]) {
        await until(`${w.name} to be refused twice`, () => w.connections >= 2 && w.received.length >= 2);
        expect(w.received.slice(0, 2)).toEqual([AUTH_FAILED, AUTH_FAILED]);
      }
      expect(none.sent[0]).not.toContain('"secret"');
      expect((await s.hubStatus()).connected_workers).toBe(0);
    });
  });
});
