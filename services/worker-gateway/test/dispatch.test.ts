// Commands onto sockets, worker messages onto the bus, and CLIs replaying and following a job's
// event log, with a fake scheduler serving the endpoints the gateway calls.
import { describe, expect } from 'vitest';
import { tapStreamRequests, test } from '@perry-hub/testkit';
import { generateSealKey, instanceKey, parseSealKeys, seal } from '@perry-hub/runtime';
import { topologyNames, type AssignCommand, type InstanceLiveness, type WorkerPresence } from '@perry-hub/contracts';
import { jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import {
  LINUX_HELLO,
  Peer,
  memoryLog,
  openBus,
  sleep,
  startGateway,
  withGateway,
  until,
  workerIdOf,
  type Bus,
} from './support/harness.js';

const JOB = '3f2c8a9e-5b1d-4c7e-9a2f-1e6d0b7c4a58';
const KEY = generateSealKey();
const CREDENTIALS =
  '{"apple_team_id":"ABCDE12345","apple_signing_identity":null,"apple_key_id":"KEY1234567","apple_issuer_id":"69a6de70-0000-47e3-e053-5b8c7c11a4d1","apple_p8_key":"-----BEGIN PRIVATE KEY-----\\n...\\n-----END PRIVATE KEY-----\\n"}';
const MANIFEST = {
  app_name: 'MyApp',
  bundle_id: 'com.example.myapp',
  version: '42',
  short_version: '1.3.0',
  entry: 'src/main_ios.ts',
  icon: 'assets/icon.png',
  targets: ['ios-sign'],
  category: null,
  minimum_os_version: null,
  entitlements: null,
  ios_distribute: 'testflight',
};

function assignCommand(jobId = JOB, attempt = 1): AssignCommand {
  return {
    kind: 'assign',
    jobId,
    attempt,
    authToken: '9b1c7e52-0d4a-4f3e-8a61-2c5b7d9e1f03',
    manifest: MANIFEST,
    credentialsSealed: seal(parseSealKeys(KEY)[0]!, CREDENTIALS, jobId).toString('base64'),
    tarballUrl: `https://hub.perryts.com/api/v1/tarball/${jobId}`,
    artifactUploadUrl: `https://hub.perryts.com/api/v1/artifact/upload/${jobId}`,
  };
}

async function connectWorker(bus: Bus, url: string, hello: object = LINUX_HELLO) {
  const peer = await Peer.open(url);
  peer.send(hello);
  const workerId = await workerIdOf(bus, (hello as { name: string }).name);
  return { peer, workerId };
}

const ENV = { PERRY_HUB_CREDENTIALS_KEY: KEY, PERRY_HUB_ACTIVITY_INTERVAL_MS: '200' };

describe('commands', () => {
  test('assign writes the original job_assign byte for byte, credentials opened, once per attempt', async ({
    natsUrl,
    prefix,
  }) => {
    await withGateway(natsUrl, prefix, { env: ENV }, async ({ bus, gw }) => {
      const { peer, workerId } = await connectWorker(bus, gw.url);
      expect(await bus.command(workerId, assignCommand())).toEqual({ ok: true, result: { accepted: true } });
      expect(await peer.frameCount(1)).toEqual([
        '{"type":"job_assign","job_id":"3f2c8a9e-5b1d-4c7e-9a2f-1e6d0b7c4a58","auth_token":"9b1c7e52-0d4a-4f3e-8a61-2c5b7d9e1f03","manifest":{"app_name":"MyApp","bundle_id":"com.example.myapp","version":"42","short_version":"1.3.0","entry":"src/main_ios.ts","icon":"assets/icon.png","targets":["ios-sign"],"category":null,"minimum_os_version":null,"entitlements":null,"ios_distribute":"testflight"},"credentials":{"apple_team_id":"ABCDE12345","apple_signing_identity":null,"apple_key_id":"KEY1234567","apple_issuer_id":"69a6de70-0000-47e3-e053-5b8c7c11a4d1","apple_p8_key":"-----BEGIN PRIVATE KEY-----\\n...\\n-----END PRIVATE KEY-----\\n"},"tarball_url":"https://hub.perryts.com/api/v1/tarball/3f2c8a9e-5b1d-4c7e-9a2f-1e6d0b7c4a58","artifact_upload_url":"https://hub.perryts.com/api/v1/artifact/upload/3f2c8a9e-5b1d-4c7e-9a2f-1e6d0b7c4a58"}',
      ]);
      // A retried assign (lost reply) is not a second build.
      expect(await bus.command(workerId, assignCommand())).toEqual({ ok: true, result: { accepted: true } });
      // No credentials: `{}`. Other commands in the original shapes.
      const other = '11111111-2222-4333-8444-555555555555';
      await bus.command(workerId, { ...assignCommand(other), credentialsSealed: null });
      await bus.command(workerId, { kind: 'cancel', jobId: JOB });
      await bus.command(workerId, { kind: 'proceed_distribute', jobId: JOB });
      await bus.command(workerId, { kind: 'skip_distribute', jobId: JOB, reason: 'Verification timed out' });
      const frames = await peer.frameCount(5);
      expect(JSON.parse(frames[1]!)).toMatchObject({ job_id: other, credentials: {} });
      expect(frames.slice(2)).toEqual([
        `{"type":"cancel","job_id":"${JOB}"}`,
        `{"type":"proceed_distribute","job_id":"${JOB}"}`,
        `{"type":"skip_distribute","job_id":"${JOB}","reason":"Verification timed out"}`,
      ]);
      // Busy workers are not told to update; presence counts the running jobs.
      expect(await bus.command(workerId, { kind: 'update_perry' })).toEqual({
        ok: true,
        result: { accepted: false, reason: 'worker is busy' },
      });
      await until(
        'active jobs in presence',
        async () => (await bus.presence.get(workerId))?.json<{ activeJobs: number }>().activeJobs === 2,
      );
      // Credentials sealed for another job do not open: refused, nothing written.
      const wrong = {
        ...assignCommand('99999999-2222-4333-8444-555555555555'),
        credentialsSealed: assignCommand().credentialsSealed,
      };
      expect(await bus.command(workerId, wrong)).toMatchObject({ ok: false, error: { code: 'INTERNAL_ERROR' } });
      expect(await bus.command(workerId, { kind: 'nope' } as never)).toMatchObject({
        ok: false,
        error: { code: 'BAD_REQUEST' },
      });
      await sleep(100);
      expect(peer.frames).toHaveLength(5);
      peer.close();
    });
  });

  test('update_perry at hello on a version mismatch, not again within the cool-down', async ({ natsUrl, prefix }) => {
    await withGateway(natsUrl, prefix, { env: { PERRY_EXPECTED_VERSION: '0.5.15' } }, async ({ bus, gw }) => {
      const hello = { ...LINUX_HELLO, name: 'outdated' };
      const first = await connectWorker(bus, gw.url, hello);
      expect(await first.peer.frameCount(1)).toEqual(['{"type":"update_perry"}']);
      first.peer.send({ type: 'update_result', success: false, old_version: '0.5.14', new_version: '', error: 'boom' });
      first.peer.close();
      await until('gone', async () => (await bus.presence.get(first.workerId))?.operation !== 'PUT');
      // The update failed and the worker reconnects: no update storm.
      const again = await connectWorker(bus, gw.url, hello);
      // Matching and unknown versions are never told.
      const current = await connectWorker(bus, gw.url, { ...LINUX_HELLO, name: 'current', perry_version: '0.5.15' });
      const unknown = await connectWorker(bus, gw.url, { ...LINUX_HELLO, name: 'unknown', perry_version: undefined });
      await sleep(200);
      expect([again.peer.frames, current.peer.frames, unknown.peer.frames]).toEqual([[], [], []]);
      // update_result success is recorded.
      current.peer.send({ type: 'update_result', success: true, old_version: '0.5.15', new_version: '0.5.16' });
      await until(
        'new version',
        async () =>
          (await bus.presence.get(current.workerId))?.json<{ perryVersion: string }>().perryVersion === '0.5.16',
      );
      for (const w of [again, current, unknown]) w.peer.close();
    });
  });
});

describe('presence, as far as the liveness record vouches for it', () => {
  test("the record names the revision and the time its workers' entries were acknowledged up to, not further", async ({
    natsUrl,
    prefix,
  }) => {
    const TTL_MS = 600; // the record is rewritten every 200 ms
    await withGateway(
      natsUrl,
      prefix,
      { env: { ...ENV, PERRY_HUB_INSTANCE_TTL_MS: String(TTL_MS) } },
      async ({ bus, gw }) => {
        const instances = await new Kvm(bus.nc).open(topologyNames(prefix).instancesBucket);
        const record = async () =>
          (await instances.get(instanceKey('worker-gateway', gw.service.instanceId)))!.json<InstanceLiveness>();
        const lists = (jobId: string) => async () => {
          const entry = await bus.presence.get(workerId);
          return entry?.json<WorkerPresence>().jobs?.some((j) => j.jobId === jobId) ? entry : undefined;
        };
        const { workerId } = await connectWorker(bus, gw.url);
        await bus.command(workerId, assignCommand());
        const listed = await until('the assignment in presence', lists(JOB));
        const seenAt = Date.now();
        const current = await until('a record that has caught up with it', async () => {
          const r = await record();
          return r.presenceRevision! >= listed.revision && r.presenceCurrentAt! >= seenAt ? r : undefined;
        });
        expect(current.presenceCurrentAt).toBeLessThanOrEqual(current.expiresAt - TTL_MS);

        // The presence bucket refuses writes (full), the instances bucket takes them: the record
        // stays fresh, and its word about the entries stops at the change it could not write.
        const jsm = await jetstreamManager(bus.nc);
        const stream = `KV_${topologyNames(prefix).presenceBucket}`;
        await jsm.streams.update(stream, { max_bytes: (await jsm.streams.info(stream)).state.bytes });
        const other = '11111111-2222-4333-8444-555555555555';
        await bus.command(workerId, assignCommand(other));
        const answeredAt = Date.now();
        await sleep(1_500);
        const behind = await record();
        expect(await lists(other)()).toBeUndefined();
        expect(behind.expiresAt - TTL_MS).toBeGreaterThan(answeredAt + 1_000);
        expect(behind.presenceCurrentAt).toBeLessThanOrEqual(answeredAt);
        expect(behind.presenceRevision).toBe(listed.revision);

        // Room again: the write is retried, and the record's word moves on with it.
        await jsm.streams.update(stream, { max_bytes: -1 });
        const written = await until('the retried write', lists(other));
        await until('a record past it', async () => {
          const r = await record();
          return r.presenceRevision! >= written.revision && r.presenceCurrentAt! > answeredAt ? r : undefined;
        });
      },
    );
  });
});

describe('worker messages', () => {
  test('events in order to the job log, outcomes to the scheduler after them, foreign jobs dropped', async ({
    natsUrl,
    prefix,
  }) => {
    await withGateway(natsUrl, prefix, { env: ENV }, async ({ bus, gw }) => {
      const { peer, workerId } = await connectWorker(bus, gw.url);
      await bus.command(workerId, assignCommand());
      await peer.frameCount(1);
      let logLengthAtComplete = -1;
      bus.workerEventReply = async (event) => {
        if (event.message['type'] === 'complete') logLengthAtComplete = (await bus.log(JOB)).length;
        return { accepted: true };
      };
      // Defect 19: a job not assigned on this connection is not this worker's to report on.
      peer.send({ job_id: 'someone-elses', message: 'x', stage: 'compiling', type: 'stage' });
      peer.send({ artifacts: [], duration_secs: 1, job_id: 'someone-elses', success: true, type: 'complete' });
      const sent: string[] = [];
      for (let i = 0; i < 300; i++) {
        const line = `{"job_id":"${JOB}","line":"line ${i}","stage":"compiling","stream":"stdout","type":"log"}`;
        sent.push(line);
        peer.send(line);
      }
      // The Windows worker's early error has no job_id: it belongs to the last job assigned.
      peer.send('{"type":"error","code":"INTERNAL_ERROR","message":"Invalid manifest","stage":null}');
      const complete = `{"artifacts":[],"duration_secs":12.5,"job_id":"${JOB}","success":false,"type":"complete"}`;
      peer.send(complete);
      await until('outcomes', () => bus.events.length === 2 && logLengthAtComplete >= 0);
      expect(bus.events.map((e) => [e.jobId, e.attempt, e.workerId, e.workerName, JSON.stringify(e.message)])).toEqual([
        [
          JOB,
          1,
          workerId,
          'kamatera-fra',
          '{"type":"error","code":"INTERNAL_ERROR","message":"Invalid manifest","stage":null}',
        ],
        [JOB, 1, workerId, 'kamatera-fra', complete],
      ]);
      expect(logLengthAtComplete).toBe(300);
      expect(await bus.log(JOB)).toEqual(sent);
      expect(await bus.log('someone-elses')).toEqual([]);
      const activity = await until('activity', () => bus.lifecycle.find((l) => l.subject.endsWith('.activity')));
      expect(activity.value['jobs']).toEqual([{ jobId: JOB, attempt: 1 }]);
      // The scheduler has the complete: a later loss of the worker does not list the job.
      peer.close();
      const lost = await until('lost', () => bus.lifecycle.find((l) => l.subject.endsWith('.lost')));
      expect(lost.value['jobs']).toEqual([]);
    });
  });

  test('a complete waits for the scheduler to come back, in order; a lost worker names its jobs', async ({
    natsUrl,
    prefix,
  }) => {
    await withGateway(natsUrl, prefix, { env: ENV, scheduler: false }, async ({ bus, gw }) => {
      const { peer, workerId } = await connectWorker(bus, gw.url);
      await bus.command(workerId, assignCommand());
      const second = '11111111-2222-4333-8444-555555555555';
      await bus.command(workerId, assignCommand(second));
      await peer.frameCount(2);
      peer.send(`{"code":"INTERNAL_ERROR","job_id":"${JOB}","message":"Build cancelled","type":"error"}`);
      peer.send(`{"artifacts":[],"duration_secs":1,"job_id":"${JOB}","success":false,"type":"complete"}`);
      await sleep(800); // the scheduler is "failing over"
      await bus.serveScheduler();
      await until('both outcomes', () => bus.events.length === 2);
      expect(bus.events.map((e) => e.message['type'])).toEqual(['error', 'complete']);
      peer.close();
      const lost = await until('lost', () => bus.lifecycle.find((l) => l.subject.endsWith('.lost')));
      expect(lost.value['jobs']).toEqual([{ jobId: second, attempt: 1 }]);
    });
  });
});

describe('CLI watchers', () => {
  test('a late subscriber gets job_created with the position, the whole history once, then live', async ({
    natsUrl,
    prefix,
  }) => {
    await withGateway(natsUrl, prefix, { env: ENV }, async ({ bus, gw }) => {
      bus.jobs.set(JOB, { status: 'running', position: 0 });
      const { peer: worker, workerId } = await connectWorker(bus, gw.url);
      await bus.command(workerId, assignCommand());
      await worker.frameCount(1);
      const early = Array.from(
        { length: 50 },
        (_, i) => `{"job_id":"${JOB}","message":"step ${i}","stage":"compiling","type":"stage"}`,
      );
      for (const m of early) worker.send(m);
      await until('history stored', async () => (await bus.log(JOB)).length === 50);

      const jsm = await jetstreamManager(bus.nc);
      const events = topologyNames(prefix).eventsStream;
      const consumerNames = async () => {
        const names: string[] = [];
        for await (const c of jsm.consumers.list(events)) names.push(c.name);
        return names;
      };
      const before = new Set(await consumerNames());
      const cli = await Peer.open(`${gw.url}/ws`);
      cli.send({ type: 'subscribe', job_id: JOB });
      cli.send({ type: 'subscribe', job_id: 'another' }); // ignored, as by the original
      const watchConsumer = await until('the watch reads through a consumer of its own', async () =>
        (await consumerNames()).find((name) => !before.has(name)),
      );
      const live = Array.from(
        { length: 50 },
        (_, i) => `{"job_id":"${JOB}","line":"live ${i}","stage":"compiling","stream":"stderr","type":"log"}`,
      );
      // Live messages race the replay: still no gap and no duplicate.
      for (const m of live) worker.send(m);
      const complete = `{"artifacts":[],"duration_secs":3,"job_id":"${JOB}","success":true,"type":"complete"}`;
      await until('live stored', async () => (await bus.log(JOB)).length === 100);
      await bus.append(JOB, complete); // the scheduler appends what the CLI should see
      await bus.append(JOB, '{"type":"stage","job_id":"after","stage":"x","message":"not followed"}');
      const frames = await cli.frameCount(102);
      await sleep(200);
      expect(cli.frames).toEqual([
        `{"type":"job_created","job_id":"${JOB}","position":0,"estimated_wait_secs":0}`,
        ...early,
        ...live,
        complete,
      ]);
      expect(frames).toHaveLength(102);
      // The watch ended with the `complete`: its consumer is deleted at once, not left to expire.
      await until('the watch consumer deleted', async () => !(await consumerNames()).includes(watchConsumer), 5_000);
      worker.close();
      cli.close();
    });
  });

  test("a watch asks for the log's last entry only after a silent check period, with one request", async ({
    natsUrl,
    prefix,
  }) => {
    const env = { ...ENV, PERRY_HUB_WS_WATCH_STALL_CHECK_MS: '400' };
    await withGateway(natsUrl, prefix, { env }, async ({ bus, gw }) => {
      bus.jobs.set(JOB, { status: 'running', position: 0 });
      const tap = await tapStreamRequests(natsUrl, topologyNames(prefix).eventsStream);
      try {
        const { peer: worker, workerId } = await connectWorker(bus, gw.url);
        await bus.command(workerId, assignCommand());
        await worker.frameCount(1);
        const cli = await Peer.open(`${gw.url}/ws`);
        cli.send({ type: 'subscribe', job_id: JOB });
        await cli.frameCount(1); // job_created
        const line = (i: number) =>
          `{"job_id":"${JOB}","line":"line ${i}","stage":"compiling","stream":"stdout","type":"log"}`;
        // A build that logs more often than the check period: the watch asks nothing of the log.
        const busy = await tap.during(async () => {
          for (let i = 0; i < 12; i++) {
            worker.send(line(i));
            await sleep(100);
          }
          await cli.frameCount(13);
        });
        expect(busy.requests.filter((r) => r.startsWith('STREAM.'))).toEqual([]);
        // A silent one: one request per period for the log's last entry, no stream info first.
        const silent = await tap.during(() => sleep(1_100));
        const asked = silent.requests.filter((r) => r.startsWith('STREAM.'));
        expect(asked.length).toBeGreaterThanOrEqual(1);
        expect(new Set(asked)).toEqual(new Set(['STREAM.MSG.GET']));
        // Nothing was missed, so the watch stays open and still delivers.
        worker.send(line(12));
        await cli.frameCount(14);
        worker.close();
        cli.close();
      } finally {
        await tap.close();
      }
    });
  });

  test("a finished job whose log lacks complete gets the synthetic one; a watcher's cancel is refused, not forwarded", async ({
    natsUrl,
    prefix,
  }) => {
    await withGateway(natsUrl, prefix, {}, async ({ bus, gw }) => {
      bus.jobs.set(JOB, { status: 'completed', position: 0 });
      const cli = await Peer.open(gw.url);
      cli.send({ type: 'subscribe', job_id: JOB });
      expect(await cli.frameCount(2, 5_000)).toEqual([
        `{"type":"job_created","job_id":"${JOB}","position":0,"estimated_wait_secs":0}`,
        `{"type":"complete","job_id":"${JOB}","success":true,"duration_secs":0,"artifacts":[]}`,
      ]);
      cli.send({ type: 'cancel', job_id: JOB });
      expect(await cli.frameCount(3)).toEqual([
        expect.any(String),
        expect.any(String),
        `{"type":"error","job_id":"${JOB}","code":"FORBIDDEN","message":"A watcher cannot cancel: use POST /api/v1/jobs/${JOB}/cancel with the credential that submitted the job"}`,
      ]);
      await sleep(300);
      expect(bus.cancels).toEqual([]);
      expect(cli.closeCode).toBeUndefined();
      cli.close();
    });
  });
});

describe('a flooding worker', () => {
  test(
    'its progress and logs over the rate are dropped, its complete is not, and the log gets summaries only',
    {
      timeout: 30_000,
    },
    async ({ natsUrl, prefix }) => {
      const bus = await openBus(natsUrl, prefix);
      const logged = memoryLog();
      const gw = await startGateway(
        natsUrl,
        prefix,
        {
          ...ENV,
          PERRY_HUB_WORKER_MESSAGES_PER_SEC: '100',
          PERRY_HUB_WORKER_BURST_MESSAGES: '200',
          PERRY_HUB_WS_LOG_SUMMARY_MS: '500',
        },
        logged.log,
      );
      try {
        const { peer, workerId } = await connectWorker(bus, gw.url);
        await bus.command(workerId, assignCommand());
        await peer.frameCount(1);
        const linesBefore = logged.lines.length;
        const started = Date.now();
        // 3,000 log lines for its job and 3,000 frames for jobs it never had (each used to be logged).
        for (let i = 0; i < 3_000; i++) {
          peer.send(`{"job_id":"${JOB}","line":"flood ${i}","stage":"compiling","stream":"stdout","type":"log"}`);
          peer.send(`{"job_id":"unknown-${i}","line":"x","stage":"compiling","stream":"stdout","type":"log"}`);
        }
        const complete = `{"artifacts":[],"duration_secs":1.0,"job_id":"${JOB}","success":true,"type":"complete"}`;
        peer.send(complete);
        await until('the complete', () => bus.events.some((e) => e.message['type'] === 'complete'), 15_000);
        const elapsedSecs = (Date.now() - started) / 1000;
        const relayed = (await bus.log(JOB)).length;
        // Every frame spends the budget (the foreign ones too, half of this flood): at most the
        // burst plus the sustained rate over the flood, with room for timing; far below 3,000.
        expect(relayed).toBeGreaterThanOrEqual(50);
        expect(relayed).toBeLessThanOrEqual(200 + Math.ceil(100 * elapsedSecs) + 50);
        await sleep(700); // one summary interval: the counts are written
        const lines = logged.lines.slice(linesBefore).map((l) => JSON.parse(l) as { msg: string; count?: number });
        expect(lines.length).toBeLessThan(20);
        const summarised = (msg: string) =>
          lines.filter((l) => l.msg === msg || l.msg === `${msg} (repeated)`).reduce((n, l) => n + (l.count ?? 1), 0);
        // Every dropped frame is counted, under one of two kinds (over the rate is checked first).
        const foreign = summarised('worker message for a job not assigned here dropped');
        const overRate = summarised('worker messages dropped: over the rate limit');
        expect(foreign).toBeGreaterThan(0);
        expect(foreign + overRate).toBe(6_000 - relayed);
        peer.close();
      } finally {
        await gw.service.stop();
        await bus.close();
      }
    },
  );
});
