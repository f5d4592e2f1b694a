// Lost workers and cancels end to end (reference 3.4, 3.5, 8.5): what the CLI, a cancelling
// client and the worker see, and how the build record ends.
import { describe, expect } from 'vitest';
import { WebSocket } from 'ws';
import { test } from '@perry-hub/testkit';
import { expectedArtifact } from '../support/rust-worker-jobs.js';
import * as wire from '../support/rust-wire.js';
import { WORKER_SECRET, tarball } from '../support/test-hub.js';
import { ofType, until, withHub } from './dispatch-kit.js';

const DURATION = '[0-9]+(\\.[0-9]+)?';

describe('lost workers end to end', () => {
  test('a worker that disconnects mid-job: the job is re-queued (attempt 2) and completes on another worker', async ({
    natsUrl,
    prefix,
    database,
  }) => {
    await withHub({ natsUrl, prefix, database }, {}, async (s) => {
      // Connected first, so it gets the job. Like the real Linux worker, its build goes on after
      // the connection died, and it reports on the old job over its next connection: refused.
      const stale = Buffer.from('stale artifact of a lost attempt');
      const flaky = await s.worker('linux', {
        name: 'flaky',
        reconnectDelayMs: 100,
        script: () => ({ durationMs: 400, artifact: stale }),
      });
      await s.worker('linux', { name: 'steady' });
      const licenseKey = await s.hub.registerLicense();
      const input = tarball('reassigned');
      let dropped = false;
      const run = s.publish(['linux'], {
        licenseKey,
        tarball: input,
        onMessage: (m) => {
          // Mid-job: the flaky worker is compiling when its connection dies.
          if (!dropped && m.type === 'stage' && m.stage === 'compiling') {
            dropped = true;
            flaky.dropConnection();
          }
        },
      });
      const result = await run.result;
      const jobId = result.jobId!;
      expect(dropped).toBe(true);
      expect(result.reason).toBe('Ready');
      expect(result.artifact?.bytes).toEqual(expectedArtifact('linux', 'linux', input));
      const requeued = `{"type":"queue_update","job_id":"${jobId}","position":1,"message":"Builder disconnected, re-queued (attempt 2)"}`;
      const t = result.transcript;
      expect(t.filter((f) => f === requeued)).toHaveLength(1);
      // Both attempts' stages reach the CLI, the re-queue notice between them.
      const compiling = t.flatMap((f, i) => (f.includes('"stage":"compiling","type":"stage"') ? [i] : []));
      expect(compiling).toHaveLength(2);
      expect(t.indexOf(requeued)).toBeGreaterThan(compiling[0]!);
      expect(t.indexOf(requeued)).toBeLessThan(compiling[1]!);
      expect(s.history.started.map((h) => h.worker)).toEqual(['flaky', 'steady']);

      // The lost attempt's upload is refused, and nothing it says reaches the job's log.
      const staleUpload = await until('the lost attempt to upload', () =>
        s.history.uploads.find((u) => u.worker === 'flaky'),
      );
      expect(staleUpload.status).toBe(403);
      await until('the lost attempt to report', () => s.history.completes.some((c) => c.worker === 'flaky'));
      expect(flaky.connections).toBe(2);
      const log = await s.watch(jobId);
      await log.next('complete', ofType('complete'));
      expect(log.frames.slice(1)).toEqual(t.slice(1));
      expect(log.frames.filter((f) => f.includes('Artifact upload failed'))).toEqual([]);
      expect(await s.status(jobId)).toEqual({ status: 'completed', position: 0 });
    });
  });

  test('a worker that freezes mid-job (no close, no pongs) is dropped after PERRY_HUB_WORKER_LOST_MS; an idle one is kept', async ({
    natsUrl,
    prefix,
    database,
  }) => {
    await withHub({ natsUrl, prefix, database }, { PERRY_HUB_WORKER_LOST_MS: '1500' }, async (s) => {
      // A Linux worker on a machine that froze: the socket stays open, nothing comes back.
      const frozen = new WebSocket(s.hub.workerUrl, { perMessageDeflate: false, autoPong: false });
      const assigned: string[] = [];
      const closed = new Promise<void>((resolve) => frozen.on('close', () => resolve()));
      frozen.on('message', (data: Buffer) => {
        const m = JSON.parse(data.toString('utf8')) as { type: string; job_id: string };
        if (m.type !== 'job_assign') return;
        assigned.push(m.job_id);
        frozen.send(wire.stage(m.job_id, 'compiling', 'Compiling TypeScript to native'));
      });
      try {
        await new Promise((resolve) => frozen.once('open', resolve));
        const info = { name: 'frozen', secret: WORKER_SECRET, perryVersion: '0.5.14', maxConcurrent: 2 };
        frozen.send(wire.hello('linux', info));
        await until('the frozen worker to register', async () => (await s.hubStatus()).connected_workers === 1);
        const steady = await s.worker('linux', { name: 'steady' });
        const licenseKey = await s.hub.registerLicense();
        const input = tarball('frozen');
        const result = await s.publish(['linux'], { licenseKey, tarball: input }).result;
        const jobId = result.jobId!;
        expect(assigned).toEqual([jobId]);
        await closed;
        expect(result.reason).toBe('Ready');
        expect(result.artifact?.bytes).toEqual(expectedArtifact('linux', 'linux', input));
        expect(result.transcript).toContain(
          `{"type":"queue_update","job_id":"${jobId}","position":1,"message":"Builder disconnected, re-queued (attempt 2)"}`,
        );
        expect(s.history.started.map((h) => h.worker)).toEqual(['steady']);
        // Idle (and silent, as the Linux worker is) for longer than the limit, yet never dropped.
        expect(steady.connections).toBe(1);
      } finally {
        frozen.terminate();
      }
    });
  });

  test('retries exhausted: every attempt loses its worker, the CLI gets the original error and exits with it', async ({
    natsUrl,
    prefix,
    database,
  }) => {
    await withHub({ natsUrl, prefix, database }, { PERRY_HUB_MAX_RETRIES: '1' }, async (s) => {
      // Drops every connection it builds on, then comes back as a new worker.
      await s.worker('linux', { name: 'doomed', script: () => ({ hang: true, disconnectAfterMs: 50 }) });
      const licenseKey = await s.hub.registerLicense();
      const run = s.publish(['linux'], { licenseKey });
      const jobId = await run.jobId;
      const result = await run.result;
      const exhausted =
        '{"type":"error","code":"INTERNAL_ERROR","message":"Build failed after 2 attempts (workers kept disconnecting)"}';
      expect(result.outcome).toBe('error');
      expect(result.exitCode).toBe(1);
      expect(result.reason).toBe(
        'Build error [INTERNAL_ERROR]: Build failed after 2 attempts (workers kept disconnecting)',
      );
      expect(result.transcript.at(-1)).toBe(exhausted);
      expect(result.transcript).toContain(
        `{"type":"queue_update","job_id":"${jobId}","position":1,"message":"Builder disconnected, re-queued (attempt 2)"}`,
      );
      expect(s.history.started.map((h) => [h.worker, h.jobId])).toEqual([
        ['doomed', jobId],
        ['doomed', jobId],
      ]);
      // The hub's own `complete` follows its error, as in the original.
      const late = await s.watch(jobId);
      await late.next('complete', ofType('complete'));
      const frames = late.frames;
      expect(frames.at(-2)).toBe(exhausted);
      expect(frames.at(-1)).toMatch(
        new RegExp(
          `^\\{"type":"complete","job_id":"${jobId}","success":false,"duration_secs":${DURATION},"artifacts":\\[\\]\\}$`,
        ),
      );
      expect(await s.status(jobId)).toEqual({ status: 'failed', position: 0 });
    });
  });
});

describe('cancel end to end', () => {
  test('a queued job (a target nobody serves) cancelled by a subscribed client', async ({
    natsUrl,
    prefix,
    database,
  }) => {
    await withHub({ natsUrl, prefix, database }, {}, async (s) => {
      await s.worker('linux', { name: 'kamatera-fra' });
      const licenseKey = await s.hub.registerLicense();
      const run = s.publish(['visionos'], { licenseKey });
      const jobId = await run.jobId;
      expect(await s.status(jobId)).toEqual({ status: 'queued', position: 1 });
      const client = await s.watch(jobId);
      await client.next('job_created', ofType('job_created'));
      client.send({ type: 'cancel', job_id: jobId });
      await client.next('complete', ofType('complete'));
      const frames = client.frames;
      expect(frames[0]).toBe(`{"type":"job_created","job_id":"${jobId}","position":1,"estimated_wait_secs":0}`);
      expect(frames.at(-2)).toBe(
        `{"type":"error","job_id":"${jobId}","code":"INTERNAL_ERROR","message":"Build cancelled"}`,
      );
      expect(frames.at(-1)).toMatch(
        new RegExp(
          `^\\{"type":"complete","job_id":"${jobId}","success":false,"duration_secs":${DURATION},"artifacts":\\[\\]\\}$`,
        ),
      );
      const result = await run.result;
      expect(result.outcome).toBe('error');
      expect(result.reason).toBe('Build error [INTERNAL_ERROR]: Build cancelled');
      expect(await s.status(jobId)).toEqual({ status: 'cancelled', position: 0 });
      expect(s.history.started).toEqual([]);
    });
  });

  test('a running job cancelled by a subscribed client: the worker is told, stops, and the record ends cancelled', async ({
    natsUrl,
    prefix,
    database,
  }) => {
    await withHub({ natsUrl, prefix, database }, {}, async (s) => {
      const linux = await s.worker('linux', { name: 'kamatera-fra', script: () => ({ hang: true }) });
      const licenseKey = await s.hub.registerLicense();
      const run = s.publish(['linux'], { licenseKey });
      const jobId = await run.jobId;
      await until('the build to run', () => s.history.started.some((h) => h.jobId === jobId));
      const client = await s.watch(jobId);
      await client.next('the compiling stage', (m) => m['stage'] === 'compiling');
      client.send({ type: 'cancel', job_id: jobId });
      const cancel = `{"type":"cancel","job_id":"${jobId}"}`;
      await until('the worker to get the cancel', () => linux.received.includes(cancel));
      await client.next('complete', ofType('complete'));
      const frames = client.frames;
      // The worker's own words, relayed verbatim (serde key order).
      expect(frames.at(-2)).toBe(
        `{"code":"INTERNAL_ERROR","job_id":"${jobId}","message":"Build cancelled","type":"error"}`,
      );
      expect(frames.at(-1)).toMatch(
        new RegExp(
          `^\\{"artifacts":\\[\\],"duration_secs":${DURATION},"job_id":"${jobId}","success":false,"type":"complete"\\}$`,
        ),
      );
      expect(linux.received.filter((f) => f === cancel)).toHaveLength(1);
      const result = await run.result;
      expect(result.outcome).toBe('error');
      expect(result.reason).toBe('Build error [INTERNAL_ERROR]: Build cancelled');
      expect(s.history.completes.map((c) => [c.jobId, c.success])).toEqual([[jobId, false]]);
      expect(await s.status(jobId)).toEqual({ status: 'cancelled', position: 0 });
    });
  });
});
