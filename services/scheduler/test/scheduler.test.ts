import { describe, expect } from 'vitest';
import { pino } from 'pino';
import { Kvm } from '@nats-io/kv';
import {
  LivenessWriter,
  call,
  handle,
  launchService,
  loadConfig,
  serveEndpoints,
  type LaunchedService,
} from '@perry-hub/runtime';
import { randomUUID } from 'node:crypto';
import { cpSync, readdirSync, rmSync } from 'node:fs';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import {
  attemptArtifactsEndpoint,
  cancelJobEndpoint,
  queuePositionEndpoint,
  queueSummaryEndpoint,
  queueStatsEndpoint,
  reclaimJobEndpoint,
  subjects,
  topologyNames,
  workerEventEndpoint,
  type CancelJobRequest,
  type HubError,
} from '@perry-hub/contracts';
import { serviceEnv, startIsolatedNats, test, until, type TestDatabase } from '@perry-hub/testkit';
import { scheduler } from '../src/index.js';
import { recordPosition } from '../src/positions.js';
import { addWorker, assignsFor, eventLog, harness, jobRow, submitJob, type Harness } from './support.js';

const log = pino({ level: process.env['TEST_LOG'] ?? 'silent' });
const FAST = {
  PERRY_HUB_WORKER_LOST_MS: '800',
  PERRY_HUB_SCHEDULER_LEASE_MS: '1500',
  PERRY_HUB_PUBLIC_URL: 'http://hub.test:3456',
};

/** A stream's directory in a nats-server's store (`jetstream/<account>/streams/<name>`). */
function streamDir(storeDir: string, stream: string): string {
  const found = readdirSync(storeDir, { recursive: true, encoding: 'utf8' }).find((p) =>
    p.endsWith(join('streams', stream)),
  );
  if (found === undefined) throw new Error(`no directory of stream ${stream} under ${storeDir}`);
  return join(storeDir, found);
}

async function start(env: Record<string, string>): Promise<LaunchedService> {
  return launchService(scheduler, loadConfig(scheduler.config, env) as never, log);
}

describe('scheduler', () => {
  test('assigns a queued job to a capable worker and completes it from the worker report', async ({
    natsUrl,
    prefix,
    database,
  }) => {
    const env = serviceEnv({ natsUrl, prefix, database }, FAST);
    const svc = await start(env);
    const h = await harness(natsUrl, prefix, database);
    try {
      await addWorker(h, prefix, 'mac', ['macos-sign', 'ios-sign'], 2);
      await addWorker(h, prefix, 'linux', ['linux', 'android', 'windows', 'ios', 'macos', 'tvos'], 2);
      const jobId = await submitJob(h, prefix, { targets: ['linux'] });
      const [assign] = await until('the assignment', () => assignsFor(h, jobId).length > 0 && assignsFor(h, jobId));
      expect(assign).toMatchObject({
        workerId: 'linux',
        attempt: 1,
        tarballUrl: `http://hub.test:3456/api/v1/tarball/${jobId}`,
        artifactUploadUrl: `http://hub.test:3456/api/v1/artifact/upload/${jobId}`,
        manifest: { app_name: 'MyApp', targets: ['linux'], extra_key: 'kept' },
      });
      expect(assign!.authToken.length).toBeGreaterThanOrEqual(32);
      expect((await jobRow(h, jobId))['status']).toBe('running');

      const complete = {
        artifacts: [],
        duration_secs: 1.5,
        job_id: jobId,
        needs_finishing: null,
        success: true,
        type: 'complete',
      };
      const ack = await call(h.nc, subjects(prefix), workerEventEndpoint, {
        workerId: 'linux',
        workerName: 'sim-linux',
        jobId,
        attempt: 1,
        message: complete,
      });
      expect(ack).toEqual({ accepted: true });
      const row = await jobRow(h, jobId);
      expect(row['status']).toBe('completed');
      expect(row['credentials_enc']).toBeNull();
      expect(await eventLog(h, prefix, jobId)).toEqual([complete]);

      // A second report of the same attempt changes nothing.
      const again = await call(h.nc, subjects(prefix), workerEventEndpoint, {
        workerId: 'linux',
        workerName: 'sim-linux',
        jobId,
        attempt: 1,
        message: complete,
      });
      expect(again.accepted).toBe(false);
    } finally {
      await h.close();
      await svc.stop();
    }
  });

  test('re-queues the jobs of a lost worker, fences the old attempt, and fails after the retries', async ({
    natsUrl,
    prefix,
    database,
  }) => {
    const svc = await start(serviceEnv({ natsUrl, prefix, database }, { ...FAST, PERRY_HUB_MAX_RETRIES: '1' }));
    const h = await harness(natsUrl, prefix, database);
    try {
      const first = await addWorker(h, prefix, 'w1', ['linux']);
      const jobId = await submitJob(h, prefix);
      await until('the first assignment', () => assignsFor(h, jobId).length === 1);
      await first.disconnect();
      const second = await addWorker(h, prefix, 'w2', ['linux']);
      const [, retry] = await until(
        'the second assignment',
        () => assignsFor(h, jobId).length === 2 && assignsFor(h, jobId),
      );
      expect(retry).toMatchObject({ workerId: 'w2', attempt: 2 });
      const stale = await call(h.nc, subjects(prefix), workerEventEndpoint, {
        workerId: 'w1',
        workerName: 'sim-w1',
        jobId,
        attempt: 1,
        message: { type: 'complete', job_id: jobId, success: true, artifacts: [], duration_secs: 1 },
      });
      expect(stale.accepted).toBe(false);

      second.vanish(); // its gateway died: no goodbye, the heartbeat just stops
      await until('the job to fail', async () => (await jobRow(h, jobId))['status'] === 'failed', 10_000);
      const events = await eventLog(h, prefix, jobId);
      expect(events[0]).toEqual({
        type: 'queue_update',
        job_id: jobId,
        position: 1,
        message: 'Builder disconnected, re-queued (attempt 2)',
      });
      expect(events.slice(-2)).toEqual([
        {
          type: 'error',
          code: 'INTERNAL_ERROR',
          message: 'Build failed after 2 attempts (workers kept disconnecting)',
        },
        { type: 'complete', job_id: jobId, success: false, duration_secs: expect.any(Number), artifacts: [] },
      ]);
    } finally {
      await h.close();
      await svc.stop();
    }
  });

  test('a lost worker whose upload was recorded is not replaced: its job completes from the upload, even when the artifact-store could not say so at first', async ({
    natsUrl,
    prefix,
    database,
  }) => {
    // No wait for the worker to come back: its job is free for another at once.
    const svc = await start(serviceEnv({ natsUrl, prefix, database }, { ...FAST, PERRY_HUB_RECLAIM_WAIT_MS: '0' }));
    const h = await harness(natsUrl, prefix, database);
    let store: Awaited<ReturnType<typeof serveEndpoints>> | undefined;
    try {
      const first = await addWorker(h, prefix, 'w1', ['linux']);
      const jobId = await submitJob(h, prefix);
      await until('the first assignment', () => assignsFor(h, jobId).length === 1);
      // Its upload recorded, as the artifact-store records one (with the row's stage); then the
      // worker is gone before its complete, and no artifact-store answers what it delivered.
      await h.db.query(
        `INSERT INTO artifacts (token, job_id, attempt, object_name, name, size, sha256, target, held, state,
           created_at, expires_at, announced, stage)
         SELECT ?, id, attempt, 'artifacts/x', 'MyApp', 3, 'abc', 'linux', FALSE, 'fresh', 0, ?, TRUE, stage
           FROM builds WHERE id = ?`,
        [randomUUID(), Date.now() + 600_000, jobId],
      );
      await first.disconnect();
      await addWorker(h, prefix, 'w2', ['linux']);
      await until('the job queued again', async () => (await jobRow(h, jobId))['status'] === 'queued', 10_000);
      await new Promise((r) => setTimeout(r, 2_500)); // a worker is free: rounds try it
      expect(assignsFor(h, jobId)).toHaveLength(1);
      expect(await jobRow(h, jobId)).toMatchObject({ status: 'queued', attempt: 1 });

      let asked = 0;
      store = await serveEndpoints(
        { nc: h.nc, subjects: subjects(prefix), service: 'artifact-store', version: '0.0.0', log },
        [handle(attemptArtifactsEndpoint, async ({ attempt }) => (asked++, { announced: attempt === 1 ? 1 : 0 }))],
      );
      await until('the job completed', async () => (await jobRow(h, jobId))['status'] === 'completed', 10_000);
      expect(asked).toBeGreaterThan(0);
      expect(assignsFor(h, jobId)).toHaveLength(1);
      const events = await eventLog(h, prefix, jobId);
      expect(events.at(-1)).toMatchObject({ type: 'complete', job_id: jobId, success: true });
    } finally {
      await store?.stop();
      await h.close();
      await svc.stop();
    }
  });

  test('a worker that lost its connection claims its build back at the same attempt; a stranger or a late claim is refused', async ({
    natsUrl,
    prefix,
    database,
  }) => {
    const svc = await start(serviceEnv({ natsUrl, prefix, database }, { ...FAST, PERRY_HUB_RECLAIM_WAIT_MS: '1500' }));
    const h = await harness(natsUrl, prefix, database);
    const s = subjects(prefix);
    const lose = (workerId: string, jobId: string) =>
      h.nc.publish(
        s.workers('lost'),
        JSON.stringify({ workerId, gatewayId: 'fake', at: Date.now(), jobs: [{ jobId, attempt: 1 }] }),
      );
    const reclaim = (jobId: string, workerId: string, workerName: string) =>
      call(h.nc, s, reclaimJobEndpoint, { jobId, workerId, workerName, gatewayId: 'fake' });
    try {
      await addWorker(h, prefix, 'w1', ['linux']);
      const jobId = await submitJob(h, prefix);
      await until('the assignment', () => assignsFor(h, jobId).length === 1);
      lose('w1', jobId);
      await until('the job back in the queue', async () => (await jobRow(h, jobId))['status'] === 'queued');
      // While it waits for its worker, a free one does not get it, and a stranger cannot claim it.
      await addWorker(h, prefix, 'w2', ['linux']);
      await new Promise((r) => setTimeout(r, 500));
      expect(assignsFor(h, jobId)).toHaveLength(1);
      expect(await reclaim(jobId, 'w9', 'sim-w9')).toMatchObject({ accepted: false });
      // The same worker, on its new connection: the same attempt, and its report counts.
      expect(await reclaim(jobId, 'w1-again', 'sim-w1')).toEqual({ accepted: true, attempt: 1 });
      expect(await jobRow(h, jobId)).toMatchObject({ status: 'running', attempt: 1, worker_id: 'w1-again' });
      const done = await call(h.nc, s, workerEventEndpoint, {
        workerId: 'w1-again',
        workerName: 'sim-w1',
        jobId,
        attempt: 1,
        message: { type: 'complete', job_id: jobId, success: true, artifacts: [], duration_secs: 1 },
      });
      expect(done.accepted).toBe(true);
      await until('the job to complete', async () => (await jobRow(h, jobId))['status'] === 'completed');
      expect(assignsFor(h, jobId)).toHaveLength(1);

      // Not claimed within the wait: dispatched anew at a new attempt; a claim of the old one is refused.
      const late = await submitJob(h, prefix);
      const [first] = await until('the assignment', () => assignsFor(h, late).length === 1 && assignsFor(h, late));
      lose(first!.workerId, late);
      const [, again] = await until(
        'the assignment after the wait',
        () => assignsFor(h, late).length === 2 && assignsFor(h, late),
        5_000,
      );
      expect(again!.attempt).toBe(2);
      expect(await reclaim(late, 'w-back', `sim-${first!.workerId}`)).toMatchObject({ accepted: false });
    } finally {
      await h.close();
      await svc.stop();
    }
  });

  test('pro before free, one running build per free license, and a job nobody can take blocks nobody', async ({
    natsUrl,
    prefix,
    database,
  }) => {
    const svc = await start(serviceEnv({ natsUrl, prefix, database }, FAST));
    const h = await harness(natsUrl, prefix, database);
    try {
      const t = Date.now();
      const nobody = await submitJob(h, prefix, { targets: ['visionos'], queuedAt: t - 5000 });
      const freeA1 = await submitJob(h, prefix, { licenseKey: 'FREE-A', queuedAt: t - 4000 });
      const freeA2 = await submitJob(h, prefix, { licenseKey: 'FREE-A', queuedAt: t - 3000 });
      const pro = await submitJob(h, prefix, { tier: 'pro', licenseKey: 'PRO-B', queuedAt: t - 1000 });
      await until(
        'four jobs queued',
        async () => (await call(h.nc, subjects(prefix), queueStatsEndpoint, {})).queueLength === 4,
      );
      await addWorker(h, prefix, 'big', ['linux'], 3);
      await until('two commands', () => h.commands.length === 2);
      await new Promise((r) => setTimeout(r, 300));
      // Both go out in one round (their order on the wire is not defined); the other free build waits.
      expect(h.commands.map((c) => (c.command as { jobId: string }).jobId).sort()).toEqual([pro, freeA1].sort());
      expect((await jobRow(h, freeA2))['status']).toBe('queued');
      expect((await jobRow(h, nobody))['status']).toBe('queued');
    } finally {
      await h.close();
      await svc.stop();
    }
  });

  test('cancels a queued job with the worker-style error and complete', async ({ natsUrl, prefix, database }) => {
    const svc = await start(serviceEnv({ natsUrl, prefix, database }, FAST));
    const h = await harness(natsUrl, prefix, database);
    try {
      const jobId = await submitJob(h, prefix, { targets: ['watchos'], licenseKey: 'FREE-AAAA-BBBB-CCCC' });
      const cancel = (request: Omit<CancelJobRequest, 'jobId'>) =>
        call(h.nc, subjects(prefix), cancelJobEndpoint, { jobId, ...request });
      // Wait for a leader: an unknown job's answer proves the leader-only endpoint is served.
      await until('a leader serving cancel', () =>
        call(h.nc, subjects(prefix), cancelJobEndpoint, { jobId: randomUUID(), by: 'admin' }).then(
          () => false,
          (err: HubError) => err.code === 'JOB_NOT_FOUND',
        ),
      );
      // A stranger, whatever it claims, is told the job does not exist; the job stays queued.
      for (const stranger of [
        { by: 'owner', licenseKey: 'FREE-0000-0000-0000' },
        { by: 'owner', accountId: 'not-the-account' },
        { by: 'owner' },
      ] as const) {
        await expect(cancel(stranger)).rejects.toMatchObject({ code: 'JOB_NOT_FOUND' });
      }
      expect((await jobRow(h, jobId))['status']).toBe('queued');
      expect(await cancel({ by: 'owner', licenseKey: 'FREE-AAAA-BBBB-CCCC' })).toEqual({ accepted: true });
      expect((await jobRow(h, jobId))['status']).toBe('cancelled');
      expect(await eventLog(h, prefix, jobId)).toEqual([
        { type: 'error', job_id: jobId, code: 'INTERNAL_ERROR', message: 'Build cancelled' },
        { type: 'complete', job_id: jobId, success: false, duration_secs: expect.any(Number), artifacts: [] },
      ]);
    } finally {
      await h.close();
      await svc.stop();
    }
  });

  test('a standby takes over dispatching when the leader goes, recovering running jobs from MySQL', async ({
    natsUrl,
    prefix,
    database,
  }) => {
    const env = serviceEnv({ natsUrl, prefix, database }, FAST);
    const leader = await start(env);
    const h = await harness(natsUrl, prefix, database);
    try {
      await addWorker(h, prefix, 'w', ['linux'], 2);
      const running = await submitJob(h, prefix);
      await until('the running job assigned', () => assignsFor(h, running).length === 1);
      const standby = await start(env);
      await leader.stop();
      const startedAt = Date.now();
      const next = await submitJob(h, prefix);
      await until('the next job assigned', () => assignsFor(h, next).length === 1, 10_000);
      expect(Date.now() - startedAt).toBeLessThan(10_000);
      // The running job survived the change of leader and completes normally. The new leader
      // serves worker events once it has taken over, which may be just after its first dispatch:
      // the gateway retries an unanswered event, and so does this.
      const ack = await call(
        h.nc,
        subjects(prefix),
        workerEventEndpoint,
        {
          workerId: 'w',
          workerName: 'sim-w',
          jobId: running,
          attempt: 1,
          message: { type: 'complete', job_id: running, success: true, artifacts: [], duration_secs: 1 },
        },
        { attempts: 10 },
      );
      expect(ack.accepted).toBe(true);
      await standby.stop();
    } finally {
      await h.close();
      await leader.stop();
    }
  });

  test('a queued job whose intake message nats-server lost in a crash is dispatched after the reconnect', async ({
    prefix,
    database,
  }) => {
    const nats = await startIsolatedNats();
    const env = serviceEnv({ natsUrl: nats.url, prefix, database }, FAST);
    const svc = await start(env);
    let h = await harness(nats.url, prefix, database);
    try {
      // A first job dispatched shows the scheduler leads, so its start-up reconcile is over.
      await addWorker(h, prefix, 'busy', ['linux']);
      const first = await submitJob(h, prefix);
      await until('the first assignment', () => assignsFor(h, first).length === 1);
      const lost = await submitJob(h, prefix, { loseIntake: true });
      await h.close();
      process.kill(nats.pid, 'SIGKILL');
      await nats.restart();
      h = await harness(nats.url, prefix, database);
      // Two slots: the first job, whose worker went silent with the old connection, is re-queued
      // too and may well be dispatched first.
      await addWorker(h, prefix, 'w', ['linux'], 2);
      const [assign] = await until(
        'the lost job assigned',
        () => assignsFor(h, lost).length > 0 && assignsFor(h, lost),
        15_000,
      );
      expect(assign).toMatchObject({ workerId: 'w', attempt: 1 });
    } finally {
      await h.close();
      await svc.stop();
    }
  });

  test('jobs submitted after nats-server restored the intake stream behind its consumer are taken all the same', async ({
    prefix,
    database,
  }) => {
    // What nats-server 2.10 can do after a kill -9 (see work-queue.ts), made certain: the
    // stream's files put back as they were when it was empty, the consumer's kept at 5.
    const nats = await startIsolatedNats();
    const names = topologyNames(prefix);
    const env = serviceEnv({ natsUrl: nats.url, prefix, database }, FAST);
    const svc = await start(env);
    const msgs = join(streamDir(nats.dataDir, names.intakeStream), 'msgs');
    const emptied = `${msgs}.empty`;
    await nats.stop();
    cpSync(msgs, emptied, { recursive: true });
    let server = await nats.restart();
    let h = await harness(nats.url, prefix, database);
    const jsm = await jetstreamManager(h.nc);
    try {
      const before: string[] = [];
      for (let i = 0; i < 5; i++) before.push(await submitJob(h, prefix));
      await until(
        'the five intake messages acknowledged',
        async () =>
          (await jsm.consumers.info(names.intakeStream, names.schedulerIntakeConsumer)).ack_floor.stream_seq === 5,
      );
      await h.close();
      await server.stop();
      rmSync(msgs, { recursive: true });
      cpSync(emptied, msgs, { recursive: true });
      server = await server.restart();
      h = await harness(nats.url, prefix, database);
      const restored = await (await jetstreamManager(h.nc)).streams.info(names.intakeStream);
      expect(restored.state.last_seq).toBe(0); // while the consumer stored 5

      // The scheduler is back when the jobs it held are dispatched; the next three are then
      // numbered 1 to 3 by the stream, below what the old consumer had delivered.
      await addWorker(h, prefix, 'w', ['linux'], 8);
      await until('the earlier jobs assigned', () => before.every((id) => assignsFor(h, id).length > 0));
      const after: string[] = [];
      for (let i = 0; i < 3; i++) after.push(await submitJob(h, prefix));
      await until('the later jobs assigned', () => after.every((id) => assignsFor(h, id).length > 0), 20_000);
      for (const id of [...before, ...after]) expect(assignsFor(h, id)).toHaveLength(1);
      // None left behind in the stream.
      await until(
        'the intake stream empty',
        async () => (await (await jetstreamManager(h.nc)).streams.info(names.intakeStream)).state.messages === 0,
      );
    } finally {
      await h.close();
      await svc.stop();
      await server.stop();
    }
  });

  test('a standby counts queue positions in MySQL by the leader rule (tier, aging)', async ({
    natsUrl,
    prefix,
    database,
  }) => {
    const agingStepMs = 1000;
    const svc = await start(serviceEnv({ natsUrl, prefix, database }, { ...FAST, PERRY_HUB_AGING_STEP_MS: '1000' }));
    const h = await harness(natsUrl, prefix, database);
    try {
      const t = Date.now();
      // Nobody can take them. The old free build has aged past the pro one (12 s > 9 points).
      const jobs = [
        await submitJob(h, prefix, { queuedAt: t - 2_000 }),
        await submitJob(h, prefix, { tier: 'pro', queuedAt: t - 1_000 }),
        await submitJob(h, prefix, { queuedAt: t - 12_000 }),
        await submitJob(h, prefix, { tier: 'pro', queuedAt: t - 500 }),
        await submitJob(h, prefix, { targets: ['windows'], queuedAt: t }),
      ];
      await until(
        'five jobs queued',
        async () => (await call(h.nc, subjects(prefix), queueStatsEndpoint, {})).queueLength === 5,
      );
      const leader = await Promise.all(
        jobs.map(async (jobId) => (await call(h.nc, subjects(prefix), queuePositionEndpoint, { jobId })).position),
      );
      expect(leader).toEqual([4, 2, 1, 3, 1]);
      const standby = await Promise.all(jobs.map((jobId) => recordPosition(h.db, agingStepMs, jobId)));
      expect(standby).toEqual(leader);
    } finally {
      await h.close();
      await svc.stop();
    }
  });

  test('an assignment its worker never got hands the attempt back: attempts count real hand-overs', async ({
    natsUrl,
    prefix,
    database,
  }) => {
    const env = serviceEnv({ natsUrl, prefix, database }, FAST);
    const svc = await start(env);
    const h = await harness(natsUrl, prefix, database);
    try {
      // Connected first, so it is offered the job first; its gateway says the socket is gone.
      await addWorker(h, prefix, 'gone', ['linux'], 1, false);
      await new Promise((r) => setTimeout(r, 20));
      await addWorker(h, prefix, 'real', ['linux'], 1);
      const jobId = await submitJob(h, prefix, { targets: ['linux'] });
      const assigns = await until(
        'the assignment to the real worker',
        () => assignsFor(h, jobId).some((a) => a.workerId === 'real') && assignsFor(h, jobId),
      );
      expect(assigns.map((a) => `${a.workerId}@${a.attempt}`)).toEqual(['gone@1', 'real@1']);
      const row = await jobRow(h, jobId);
      expect([row['status'], row['attempt'], row['retries']]).toEqual(['running', 1, 0]);
    } finally {
      await h.close();
      await svc.stop();
    }
  });

  test('an assignment MySQL committed but whose answer was lost is not forgotten: handed back, then delivered', async ({
    natsUrl,
    prefix,
    database,
  }) => {
    await withAnswerLost({ natsUrl, prefix, database }, "UPDATE builds SET status = 'running'", async (h, proxy) => {
      // The dispatcher's retry of the assignment misses its compare-and-set: the row says running.
      await addWorker(h, prefix, 'w', ['linux'], 1, true, { listsJobs: true });
      const jobId = await submitJob(h, prefix, { targets: ['linux'] });
      await until('the answer cut', () => proxy.cut > 0);
      // The row holds the token of the write whose answer was lost: the leader's own assignment,
      // never sent, handed back at once and sent again (its worker's entry, which never lists
      // attempt 1, would have had it handed back later by the undelivered rule).
      const [assign] = await until(
        'an assignment',
        () => assignsFor(h, jobId).length > 0 && assignsFor(h, jobId),
        20_000,
      );
      expect(assign).toMatchObject({ workerId: 'w', attempt: 2 });
      expect(proxy.cut).toBe(1);
      const history = JSON.parse(String((await jobRow(h, jobId))['history'])) as { state: string; reason?: string }[];
      expect(history.map((e) => e.reason ?? e.state)).toContain(
        'the assignment was written but its answer lost, so never sent',
      );
    });
  });

  test("a finish MySQL committed but whose answer was lost still reaches the job's log, and frees the worker", async ({
    natsUrl,
    prefix,
    database,
  }) => {
    await withAnswerLost(
      { natsUrl, prefix, database },
      'UPDATE builds SET status = ?, errorMessage = ?',
      async (h, proxy) => {
        await addWorker(h, prefix, 'w', ['linux'], 1);
        const jobId = await submitJob(h, prefix, { targets: ['linux'] });
        await until('the assignment', () => assignsFor(h, jobId).length > 0);
        const complete = { type: 'complete', job_id: jobId, success: true, duration_secs: 1, artifacts: [] };
        const report = { workerId: 'w', workerName: 'sim-w', jobId, attempt: 1, message: complete };
        // The leader dispatches before it serves its endpoints: the report waits for them.
        await until('the leader serving', () =>
          call(h.nc, subjects(prefix), queueSummaryEndpoint, {}).then(
            () => true,
            () => false,
          ),
        );
        // The gateway's forward: its first try fails with the lost answer, its retry is told stale.
        await expect(call(h.nc, subjects(prefix), workerEventEndpoint, report)).rejects.toThrow();
        expect(proxy.cut).toBe(1);
        expect(await call(h.nc, subjects(prefix), workerEventEndpoint, report)).toEqual({
          accepted: false,
          reason: 'job already finished',
        });
        expect((await jobRow(h, jobId))['status']).toBe('completed');
        // The outbox pass (every 10 s after a failure) publishes what the lost answer held back.
        await until('the complete in the log', async () => (await eventLog(h, prefix, jobId)).length > 0, 20_000);
        expect(await eventLog(h, prefix, jobId)).toEqual([complete]);
        // Its slot is free: the worker (one slot) gets the next job.
        const next = await submitJob(h, prefix, { targets: ['linux'] });
        await until('the next job assigned', () => assignsFor(h, next).length > 0, 10_000);
      },
    );
  });

  test('a re-queue MySQL committed but whose answer was lost still reaches another worker', async ({
    natsUrl,
    prefix,
    database,
  }) => {
    await withAnswerLost({ natsUrl, prefix, database }, "UPDATE builds SET status = 'queued'", async (h, proxy) => {
      const first = await addWorker(h, prefix, 'w1', ['linux']);
      const jobId = await submitJob(h, prefix, { targets: ['linux'] });
      await until('the first assignment', () => assignsFor(h, jobId).length === 1);
      await first.disconnect();
      await until('the answer cut', () => proxy.cut > 0);
      await addWorker(h, prefix, 'w2', ['linux']);
      const [, retry] = await until(
        'the second assignment',
        () => assignsFor(h, jobId).length === 2 && assignsFor(h, jobId),
        15_000,
      );
      expect(retry).toMatchObject({ workerId: 'w2', attempt: 2 });
    });
  });

  test("an entry that never lists an assignment hands it back on its gateway's word, once the leader's copy of presence has the revision the word names", async ({
    natsUrl,
    prefix,
    database,
  }) => {
    await withGateways({ natsUrl, prefix, database }, async (h, gateway) => {
      // Two live gateways: one whose record names a revision this bucket has, one a revision it
      // has not reached (as a leader's copy lags a record after a partition).
      const gateways = [gateway('gw-current'), gateway('gw-ahead')];
      const revisions: number[] = [];
      for (const [i, [workerId, target]] of [
        ['on-current', 'linux'],
        ['on-ahead', 'android'],
      ].entries()) {
        await addWorker(h, prefix, workerId!, [target!], 1, true, {
          gatewayId: `gw-${['current', 'ahead'][i]}`,
          beats: false,
        });
        // An entry that says it holds no jobs, and is never rewritten: the assignment never arrived.
        const entry = (await h.presence.get(workerId!))!.json<Record<string, unknown>>();
        revisions.push(await h.presence.put(workerId!, JSON.stringify({ ...entry, jobs: [] })));
      }
      gateways[0]!.stampWith(() => ({ presenceRevision: revisions[1]!, presenceCurrentAt: Date.now() }));
      gateways[1]!.stampWith(() => ({ presenceRevision: revisions[1]! + 1_000, presenceCurrentAt: Date.now() }));
      for (const gateway of gateways) await gateway.start();
      const linux = await submitJob(h, prefix, { targets: ['linux'] });
      const android = await submitJob(h, prefix, { targets: ['android'] });
      await until('both assigned', () => assignsFor(h, linux).length > 0 && assignsFor(h, android).length > 0);
      // Handed back 15 s after the assignment (UNDELIVERED_VOUCHED_GRACE_MS) and assigned again.
      const again = await until(
        'the linux job assigned again',
        () => assignsFor(h, linux).length > 1 && assignsFor(h, linux),
        30_000,
      );
      expect(again.map((a) => `${a.workerId}@${a.attempt}`)).toEqual(['on-current@1', 'on-current@2']);
      await new Promise((r) => setTimeout(r, 2_000)); // two more sweeps
      expect(assignsFor(h, android).map((a) => `${a.workerId}@${a.attempt}`)).toEqual(['on-ahead@1']);
      expect((await jobRow(h, android))['status']).toBe('running');
    });
  });

  test('a leader that loses its lease while it asks what an attempt delivered writes nothing after', async ({
    natsUrl,
    prefix,
    database,
  }) => {
    await withGateways({ natsUrl, prefix, database }, async (h, gateway) => {
      // The artifact-store answers, slowly: as one cut off from the cluster is not answered at all.
      let asked = 0;
      const slowStore = await serveEndpoints(
        { nc: h.nc, subjects: subjects(prefix), service: 'artifact-store', version: '0.0.0', log },
        [
          handle(attemptArtifactsEndpoint, async () => {
            asked++;
            await new Promise((r) => setTimeout(r, 3_000));
            return { announced: 0 };
          }),
        ],
      );
      try {
        const dying = gateway('gw-dying');
        await dying.start();
        await addWorker(h, prefix, 'w1', ['linux'], 1, true, { gatewayId: 'gw-dying', beats: false });
        const jobId = await submitJob(h, prefix, { targets: ['linux'] });
        await until('the job assigned', () => assignsFor(h, jobId).length > 0);
        // The gateway dies: its workers are released once its record expires, which first asks
        // whether the attempt delivered. Meanwhile the lease goes to another holder.
        dying.abandon();
        await until('the artifact-store asked', () => asked > 0, 10_000);
        const leases = await new Kvm(h.nc).open(topologyNames(prefix).leasesBucket);
        const lease = (await leases.get('scheduler'))!;
        await leases.update(
          'scheduler',
          JSON.stringify({ holder: 'another', expiresAt: Date.now() + 60_000 }),
          lease.revision,
        );
        await new Promise((r) => setTimeout(r, 4_000));
        // Still the running attempt 1: deciding on it is the next leader's.
        expect(await jobRow(h, jobId)).toMatchObject({ status: 'running', attempt: 1 });
      } finally {
        await slowStore.stop();
      }
    });
  });

  test('a live gateway vouches for its idle workers: no heartbeats needed; a worker of an unknown gateway still goes silent', async ({
    natsUrl,
    prefix,
    database,
  }) => {
    await withGateways({ natsUrl, prefix, database }, async (h, gateway) => {
      await gateway('gw-live').start();
      // Entries written once at their hello, never refreshed.
      await addWorker(h, prefix, 'vouched', ['linux'], 1, true, { gatewayId: 'gw-live', beats: false });
      await addWorker(h, prefix, 'unvouched', ['android'], 1, true, { gatewayId: 'gw-unknown', beats: false });
      const lostMs = Number(FAST.PERRY_HUB_WORKER_LOST_MS);
      await new Promise((r) => setTimeout(r, 4 * lostMs));
      const linux = await submitJob(h, prefix, { targets: ['linux'] });
      const android = await submitJob(h, prefix, { targets: ['android'] });
      await until('the linux job assigned', () => assignsFor(h, linux).length > 0);
      expect(assignsFor(h, linux).map((a) => a.workerId)).toEqual(['vouched']);
      await new Promise((r) => setTimeout(r, 2 * lostMs));
      expect(assignsFor(h, android)).toEqual([]);
    });
  });
});

/**
 * A scheduler whose gateways' liveness records last 1.5 s, and the harness; `gateway(id)` makes a
 * liveness writer for a gateway of that id (started by the body), abandoned afterwards.
 */
async function withGateways(
  where: { natsUrl: string; prefix: string; database: TestDatabase },
  body: (h: Harness, gateway: (id: string) => LivenessWriter) => Promise<void>,
): Promise<void> {
  const ttlMs = 1_500;
  const svc = await start(serviceEnv(where, { ...FAST, PERRY_HUB_INSTANCE_TTL_MS: String(ttlMs) }));
  const h = await harness(where.natsUrl, where.prefix, where.database);
  const instances = await new Kvm(h.nc).open(topologyNames(where.prefix).instancesBucket);
  const writers: LivenessWriter[] = [];
  const gateway = (id: string) => {
    const writer = new LivenessWriter({ kv: instances, instanceId: id, service: 'worker-gateway', ttlMs, log });
    writers.push(writer);
    return writer;
  };
  try {
    await body(h, gateway);
  } finally {
    for (const writer of writers) writer.abandon();
    await h.close();
    await svc.stop();
  }
}

/**
 * A scheduler that reaches MariaDB through `answerLostAfter(statement)`: the first such statement
 * is committed but its answer lost (MariaDB killed just after the commit).
 */
async function withAnswerLost(
  where: { natsUrl: string; prefix: string; database: TestDatabase },
  statement: string,
  body: (h: Harness, proxy: { readonly cut: number }) => Promise<void>,
): Promise<void> {
  const proxy = await answerLostAfter(where.database.port, statement);
  const svc = await start(serviceEnv({ ...where, database: { ...where.database, port: proxy.port } }, FAST));
  const h = await harness(where.natsUrl, where.prefix, where.database);
  try {
    await body(h, proxy);
  } finally {
    await h.close();
    await svc.stop();
    proxy.close();
  }
}

const COM_STMT_PREPARE = 0x16;
const COM_STMT_EXECUTE = 0x17;

/**
 * A TCP proxy to MariaDB on `port` that, the first time a client runs `statement`, lets the
 * server run it and answer, then closes both sides without passing the answer on. A prepared
 * statement is run by the execute that follows its prepare on the connection (the text travels
 * only with the prepare).
 */
async function answerLostAfter(port: number, statement: string): Promise<{ port: number; cut: number; close(): void }> {
  let armed = true;
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect(port, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => undefined);
      s.on('close', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    let [cutting, prepared] = [false, false];
    client.on('data', (chunk: Buffer) => {
      // A packet: 3 bytes of length, 1 of sequence, then the command.
      const command = chunk[4];
      if (armed && chunk.includes(statement)) {
        if (command === COM_STMT_PREPARE) prepared = true;
        else [armed, cutting] = [false, true];
      } else if (armed && prepared && command === COM_STMT_EXECUTE) [armed, cutting] = [false, true];
      upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => {
      if (!cutting) return void client.write(chunk);
      proxy.cut++;
      client.destroy();
      upstream.destroy();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const proxy = {
    port: (server.address() as AddressInfo).port,
    cut: 0,
    close: () => {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
  return proxy;
}
