// Lost workers and cancels end to end (reference 3.4, 3.5, 8.5): what the CLI, a cancelling
// client and the worker see, and how the build record ends.
import { describe, expect } from 'vitest';
import { WebSocket } from 'ws';
import { natsInboxPrefix, subjects } from '@perry-hub/contracts';
import { connectTestNats, TEST_TOOL, test } from '@perry-hub/testkit';
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
    // No wait for the lost worker to claim its build back (PERRY_HUB_RECLAIM_WAIT_MS=0), as when
    // it does not come back in time: the job goes to another worker at once.
    await withHub({ natsUrl, prefix, database }, { PERRY_HUB_RECLAIM_WAIT_MS: '0' }, async (s) => {
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

      // The lost attempt's upload is refused, and nothing it says reaches the job's log. It
      // fetched its tarball from this ingest, which kept that grant for its uploads: the refusal
      // comes from the builds row, checked as the artifact is recorded, then from the scheduler.
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

/** What a stranger gets for someone else's job, and for a job that does not exist: the same. */
const NOT_FOUND = { status: 404, body: { error: { code: 'JOB_NOT_FOUND', message: 'Job not found' } } };

describe('cancel end to end: only the owner (or the admin) cancels', () => {
  test("a queued job: a watcher's cancel frame and a stranger's license are refused; the submitting license cancels", async ({
    natsUrl,
    prefix,
    database,
  }) => {
    await withHub({ natsUrl, prefix, database }, {}, async (s) => {
      await s.worker('linux', { name: 'kamatera-fra' });
      const licenseKey = await s.hub.registerLicense();
      const stranger = await s.hub.registerLicense();
      const run = s.publish(['visionos'], { licenseKey });
      const jobId = await run.jobId;
      expect(await s.status(jobId)).toEqual({ status: 'queued', position: 1 });
      const client = await s.watch(jobId);
      await client.next('job_created', ofType('job_created'));

      // Attacks that used to cancel: a watcher's frame (it knows the id), another license.
      client.send({ type: 'cancel', job_id: jobId });
      const refused = await client.next('the refusal', (m) => m['code'] === 'FORBIDDEN');
      expect(refused).toEqual({
        type: 'error',
        job_id: jobId,
        code: 'FORBIDDEN',
        message: `A watcher cannot cancel: use POST /api/v1/jobs/${jobId}/cancel with the credential that submitted the job`,
      });
      expect(await s.cancel(jobId, { licenseKey: stranger })).toEqual(NOT_FOUND);
      expect(await s.cancel(jobId, { apiToken: await s.hub.account('free') })).toEqual(NOT_FOUND);
      // An unknown job looks the same, so cancel cannot probe for job ids; no credential is a 401.
      expect(await s.cancel('3f2c8a9e-5b1d-4c7e-9a2f-1e6d0b7c4a58', { licenseKey })).toEqual(NOT_FOUND);
      expect(await s.cancel(jobId, {})).toMatchObject({ status: 401, body: { error: { code: 'AUTH_REQUIRED' } } });
      expect(await s.status(jobId)).toEqual({ status: 'queued', position: 1 });

      expect(await s.cancel(jobId, { licenseKey })).toEqual({ status: 200, body: { job_id: jobId, cancelled: true } });
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
      expect(await s.cancel(jobId, { licenseKey })).toMatchObject({
        status: 409,
        body: { error: { code: 'JOB_NOT_RUNNING' } },
      });
      expect(s.history.started).toEqual([]);
    });
  });

  test('a running job: strangers on HTTP and NATS are refused, the owning account cancels over NATS, the worker is told once', async ({
    natsUrl,
    prefix,
    database,
  }) => {
    await withHub({ natsUrl, prefix, database }, {}, async (s) => {
      const linux = await s.worker('linux', { name: 'kamatera-fra', script: () => ({ hang: true }) });
      const apiToken = await s.hub.account('free');
      const run = s.publish(['linux'], { apiToken });
      const jobId = await run.jobId;
      await until('the build to run', () => s.history.started.some((h) => h.jobId === jobId));
      const client = await s.watch(jobId);
      await client.next('the compiling stage', (m) => m['stage'] === 'compiling');
      const cancel = `{"type":"cancel","job_id":"${jobId}"}`;

      // As a tool does: its own identity and inbox, allowed only the tool subjects.
      const nc = await connectTestNats(natsUrl, {
        as: TEST_TOOL,
        inboxPrefix: natsInboxPrefix(prefix, { tool: 'test' }),
      });
      try {
        const overNats = async (payload: object) => {
          const reply = await nc.request(subjects(prefix).buildsCancel, JSON.stringify(payload), { timeout: 5_000 });
          return reply.json<Record<string, unknown>>();
        };
        const notFound = { ok: false, error: { code: 'JOB_NOT_FOUND', message: 'Job not found', retry: 'never' } };
        client.send({ type: 'cancel', job_id: jobId });
        await client.next('the refusal', (m) => m['code'] === 'FORBIDDEN');
        expect(await s.cancel(jobId, { apiToken: await s.hub.account('pro') })).toEqual(NOT_FOUND);
        expect(await overNats({ job_id: jobId, license_key: await s.hub.registerLicense() })).toEqual(notFound);
        expect(await overNats({ job_id: jobId, api_token: 'not-a-token' })).toMatchObject({
          ok: false,
          error: { code: 'AUTH_INVALID' },
        });
        expect(await overNats({ job_id: jobId })).toMatchObject({ ok: false, error: { code: 'AUTH_REQUIRED' } });
        expect(linux.received).not.toContain(cancel);

        expect(await overNats({ job_id: jobId, api_token: apiToken })).toEqual({
          ok: true,
          result: { job_id: jobId, cancelled: true },
        });
      } finally {
        await nc.close();
      }
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
