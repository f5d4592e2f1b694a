// Attacks on the WebSocket edge that used to succeed against the hub, each run while a real
// build goes through it: a subscribe storm on one job id, and a worker flooding frames. The hub
// must keep serving the build (CLI and worker exactly as the Rust clients speak), ask the
// scheduler about the stormed job a bounded number of times, and keep its log bounded.
import { pino } from 'pino';
import { describe, expect } from 'vitest';
import { WebSocket } from 'ws';
import { subjects } from '@perry-hub/contracts';
import { connectTestNats, test } from '@perry-hub/testkit';
import { expectedArtifact } from '../support/rust-worker-jobs.js';
import * as wire from '../support/rust-wire.js';
import { WORKER_SECRET, tarball } from '../support/test-hub.js';
import { until, withHub } from './dispatch-kit.js';

const MiB = 1024 * 1024;
/** The attacker's sockets come from another loopback address than the CLI's and the workers'. */
const ATTACKER_ADDRESS = '127.0.0.2';

interface StormResult {
  subscribesSent: number;
  refusedAtUpgrade: number;
  jobCreated: number;
}

/**
 * `total` subscribe attempts on one job, `wave` sockets at a time: each wave's sockets are all
 * opened first (holding as many as the hub lets one address hold), then each subscribes. Sockets
 * the hub keeps are kept open.
 */
async function subscribeStorm(wsUrl: string, jobId: string, total: number, wave: number, open: WebSocket[]) {
  const result: StormResult = { subscribesSent: 0, refusedAtUpgrade: 0, jobCreated: 0 };
  for (let done = 0; done < total; done += wave) {
    const opened = await Promise.all(
      Array.from(
        { length: Math.min(wave, total - done) },
        () =>
          new Promise<WebSocket | undefined>((resolve) => {
            const ws = new WebSocket(wsUrl, { localAddress: ATTACKER_ADDRESS, perMessageDeflate: false });
            ws.on('unexpected-response', (_req, res) => {
              if (res.statusCode === 429) result.refusedAtUpgrade++;
              ws.terminate();
              resolve(undefined);
            });
            ws.on('error', () => resolve(undefined));
            ws.on('open', () => resolve(ws));
            ws.on('message', (data: Buffer) => {
              if (data.toString().includes('"job_created"')) result.jobCreated++;
            });
          }),
      ),
    );
    for (const ws of opened) {
      if (!ws) continue;
      open.push(ws);
      ws.send(JSON.stringify({ type: 'subscribe', job_id: jobId }));
      result.subscribesSent++;
    }
  }
  return result;
}

describe('attacks on the WebSocket edge, with a real build running', () => {
  test(
    '6,000 subscribes to one job: the CLI still builds, the scheduler is asked a bounded number of times, RSS stays bounded',
    {
      timeout: 120_000,
    },
    async ({ natsUrl, prefix, database }) => {
      await withHub({ natsUrl, prefix, database }, {}, async (s) => {
        await s.worker('linux', { name: 'kamatera-fra' });
        // Every job-status request the scheduler gets, from the attacker's own CLI on.
        const nc = await connectTestNats(natsUrl);
        const asked: string[] = [];
        nc.subscribe(`${subjects(prefix).endpoint('scheduler', 'job-status')}`, {
          callback: (_err, msg) => void asked.push(msg.json<{ jobId: string }>().jobId),
        });
        await nc.flush();
        // Anyone gets a job id: a free auto-registered license and a build nobody can take.
        const attacker = s.publish(['visionos'], { licenseKey: await s.hub.registerLicense(), timeoutMs: 60_000 });
        const target = await attacker.jobId;
        const rssBefore = process.memoryUsage().rss;
        let rssPeak = rssBefore;
        const sampler = setInterval(() => (rssPeak = Math.max(rssPeak, process.memoryUsage().rss)), 50);
        const open: WebSocket[] = [];
        try {
          const storm = subscribeStorm(`${s.hub.url.replace('http://', 'ws://')}/ws`, target, 6_000, 200, open);
          // Meanwhile a legitimate `perry publish` and a Linux worker, exactly as the Rust clients.
          const input = tarball('during the storm');
          const cli = await s.publish(['linux'], { licenseKey: await s.hub.registerLicense(), tarball: input }).result;
          const attack = await storm;

          expect(cli.reason).toBe('Ready');
          expect(cli.messages.map((m) => m.type)).toEqual(expect.arrayContaining(['job_created', 'log', 'complete']));
          expect(cli.messages[0]!.type).toBe('job_created');
          // The artifact is made from the tarball the worker downloaded: that download worked too.
          expect(cli.artifact?.bytes).toEqual(expectedArtifact('linux', 'linux', input));
          // Every attempt was either a subscribe on an accepted socket or refused at the upgrade.
          expect(attack.subscribesSent + attack.refusedAtUpgrade).toBe(6_000);
          expect(attack.refusedAtUpgrade).toBeGreaterThan(0);
          expect(attack.subscribesSent).toBeGreaterThanOrEqual(32);
          // At most the watchers a job may have (and the attacker's own CLI is one of them).
          expect(attack.jobCreated).toBeGreaterThan(0);
          expect(attack.jobCreated).toBeLessThanOrEqual(16);
          // Not one scheduler request per socket: concurrent subscribers share one, briefly cached,
          // and a subscribe over the job's watcher limit is refused before anything is asked.
          const aboutTarget = asked.filter((id) => id === target).length;
          expect(aboutTarget).toBeGreaterThan(0);
          expect(aboutTarget).toBeLessThan(attack.subscribesSent / 10);
          expect(aboutTarget).toBeLessThan(100);
          expect(rssPeak - rssBefore).toBeLessThan(200 * MiB);
        } finally {
          clearInterval(sampler);
          for (const ws of open) ws.terminate();
          await nc.close();
        }
        expect(await s.cancel(target, { admin: true })).toMatchObject({ status: 200 });
        expect((await attacker.result).reason).toBe('Build error [INTERNAL_ERROR]: Build cancelled');
      });
    },
  );

  test(
    "a worker's flood does not delay another worker's job_assign by more than a second, nor grow the log",
    {
      timeout: 120_000,
    },
    async ({ natsUrl, prefix, database }) => {
      const lines: string[] = [];
      const log = pino({ level: 'info' }, { write: (line: string) => void lines.push(line) });
      await withHub(
        { natsUrl, prefix, database },
        {},
        async (s) => {
          // The flooder speaks the Linux worker's hello, takes one job and then floods.
          const flooder = new WebSocket(s.hub.workerUrl, { perMessageDeflate: false });
          const assigns: string[] = [];
          flooder.on('message', (data: Buffer) => {
            const text = data.toString();
            if (text.startsWith('{"type":"job_assign"')) assigns.push(text);
          });
          await new Promise((resolve, reject) => flooder.once('open', resolve).once('error', reject));
          flooder.send(
            wire.hello('linux', { name: 'flooder', secret: WORKER_SECRET, perryVersion: '0.5.14', maxConcurrent: 1 }),
          );
          const victim = s.publish(['linux'], { licenseKey: await s.hub.registerLicense() });
          const floodJob = await victim.jobId;
          await until('the flooder to get its job', () => assigns.length === 1);

          // Baseline: how long a job_assign takes to reach an honest worker on this machine now.
          const honest = await s.worker('linux', { name: 'honest', maxConcurrent: 1 });
          const assignDelay = async (label: string) => {
            const before = honest.received.filter((f) => f.startsWith('{"type":"job_assign"')).length;
            const startedAt = Date.now();
            const run = s.publish(['linux'], { licenseKey: await s.hub.registerLicense(), tarball: tarball(label) });
            await until(
              `${label}: job_assign`,
              () => honest.received.filter((f) => f.startsWith('{"type":"job_assign"')).length > before,
            );
            const delayMs = Date.now() - startedAt;
            expect((await run.result).reason).toBe('Ready');
            return delayMs;
          };
          const baselineMs = await assignDelay('baseline');

          const linesBefore = lines.length;
          // About 8,000 frames a second (the observed attack sent 7.7k), half of them for jobs the
          // flooder never had. Built by concatenation: the flood runs in this process too, and
          // must not be slow to make, or it would measure the test instead of the hub.
          let sent = 0;
          let flooding = true;
          const own = (n: number) =>
            `{"job_id":"${floodJob}","line":"flood line ${n}","stage":"compiling","stream":"stdout","type":"log"}`;
          const foreign = (n: number) =>
            `{"job_id":"unknown-${n}","line":"x","stage":"compiling","stream":"stdout","type":"log"}`;
          const flood = (async () => {
            while (flooding) {
              for (let i = 0; i < 40; i++, sent++) {
                flooder.send(own(sent));
                flooder.send(foreign(sent));
              }
              await new Promise((resolve) => setTimeout(resolve, 10));
            }
          })();
          await until('the flood to be under way', () => sent >= 2_000);
          const duringMs = await assignDelay('during the flood');
          flooding = false;
          await flood;
          flooder.send(wire.complete('linux', floodJob, false, 1, null, []));
          expect((await victim.result).success).toBe(false);
          flooder.terminate();

          expect(sent).toBeGreaterThanOrEqual(2_000);
          expect(duringMs - baselineMs, `job_assign after ${baselineMs} ms, then ${duringMs} ms`).toBeLessThan(1_000);
          // 2 x `sent` frames, half for jobs the flooder never had: a few summary lines, not one each.
          const floodLines = lines.slice(linesBefore);
          expect(floodLines.length).toBeLessThan(60);
          expect(floodLines.filter((l) => l.includes('not assigned here')).length).toBeLessThan(10);
        },
        { log },
      );
    },
  );
});
