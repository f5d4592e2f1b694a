// The whole hub (the all-in-one: six services, its nats-server and MariaDB) under kill -9 at
// random moments, right after a job's row is committed, and in the middle of artifact downloads,
// while six users run the CLI the way the real one behaves (no Idempotency-Key; it gives up when
// its submission is cut or its first WebSocket connect fails, and its user runs it again with the
// same project; a cut download is fetched again by its link or by running the CLI again) and four
// Linux workers reconnect. Judged by the history the test keeps, not by the hub's tables alone.
//
// Seeded: the seed is printed; CRASH_TEST_SEED replays a run's plan (which projects are large,
// which kills, the users' pauses). CRASH_TEST_BUILDS and CRASH_TEST_KILLS make it longer (see the
// README, "Crash recovery").
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RowDataPacket } from '@perry-hub/db';
import { ensureBuilt } from '../support/hub-process.js';
import { download, perryPublish, sniffDownload, type PublishResult } from '../support/perry-cli.js';
import { ProcessHub } from '../support/process-hub.js';
import { expectedArtifact } from '../support/rust-worker-jobs.js';
import { WorkerHistory, linuxWorker, type SimulatedWorker } from '../support/rust-workers.js';
import { CREDENTIALS, MANIFEST, WORKER_SECRET, tarball } from '../support/test-hub.js';
import { publishBody, send } from '../integration/support/perry-publish.js';
import { expectEveryJobCompletedOnce } from './harness.js';
import { whenTrue } from '@perry-hub/testkit';

const SEED = Number(process.env['CRASH_TEST_SEED'] ?? Math.floor(Math.random() * 2 ** 31));
const BUILDS = Number(process.env['CRASH_TEST_BUILDS'] ?? 60);
const KILLS = Number(process.env['CRASH_TEST_KILLS'] ?? 4);
const USERS = 6;
const WORKERS = 4;
const MiB = 1024 * 1024;
const LARGE_BYTES = 10 * MiB;

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** mulberry32: small, seedable, good enough to plan a test run. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type KillKind = 'random' | 'row' | 'download';

interface Project {
  readonly user: number;
  readonly label: string;
  readonly input: Buffer;
  readonly large: boolean;
  /** Every CLI run (and link retry) of this one user action. */
  readonly runs: string[];
  /** Job ids the hub acknowledged to this project's runs. */
  readonly acknowledged: Set<string>;
  artifactSha?: string;
}

interface KillRecord {
  kind: KillKind;
  at: number;
  upAt: number;
  running: string[];
  /** Reservations without a job row just before the kill (at least the stalled upload's). */
  orphans: string[];
  redispatchMs: number[];
  reservationsClearedMs: number;
  deadReservations: number;
  /** The next kill came before the watch of this restart ended. */
  interrupted: boolean;
  workersSeen: number[];
}

let dataDir: string;
beforeAll(() => {
  ensureBuilt();
  dataDir = mkdtempSync(join(tmpdir(), 'perry-hub-random-crash-'));
});
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

async function rows(hub: ProcessHub, sql: string, params: unknown[] = []): Promise<RowDataPacket[]> {
  const [r] = await hub.db.query<RowDataPacket[]>(sql, params);
  return r;
}

async function connectedWorkers(hub: ProcessHub): Promise<number | undefined> {
  try {
    const res = await fetch(`${hub.url}/api/v1/status`);
    if (res.status !== 200) return undefined;
    return ((await res.json()) as { connected_workers: number }).connected_workers;
  } catch {
    return undefined;
  }
}

const figures = (ms: number[]) =>
  ms.length === 0
    ? '-'
    : `${Math.min(...ms)}-${Math.max(...ms)} ms (median ${[...ms].sort((a, b) => a - b)[Math.floor(ms.length / 2)]})`;

describe('fault: the whole hub killed at random', () => {
  it(
    `${BUILDS} builds from ${USERS} CLIs, ${KILLS} kill -9 of the all-in-one: every user action gets its build once, charged once`,
    { timeout: 900_000 },
    async () => {
      const rng = seeded(SEED);
      console.log(
        `random crash test: seed ${SEED} (replay with CRASH_TEST_SEED=${SEED}), ${BUILDS} builds, ${KILLS} kills`,
      );
      const hub = await ProcessHub.startAllInOne(dataDir);
      const history = new WorkerHistory();
      const workers: SimulatedWorker[] = [];
      const durations = Array.from({ length: BUILDS * 4 }, () => 1_000 + Math.floor(rng() * 3_000));
      let nextDuration = 0;
      // Pro accounts (Bearer, the logged-in CLI) for half the users, free license keys for the others.
      const credentials: ({ apiToken: string } | { licenseKey: string })[] = [];
      for (let u = 0; u < USERS; u++) {
        if (u % 2 === 0) credentials.push({ apiToken: await hub.account(`crash-${u}`, `crash${u}`) });
        else {
          const res = await fetch(`${hub.url}/api/v1/license/register`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: '{}',
          });
          credentials.push({ licenseKey: ((await res.json()) as { license_key: string }).license_key });
        }
      }
      const projects: Project[] = Array.from({ length: BUILDS }, (_, i) => {
        const large = rng() < 0.15;
        const label = `crash ${SEED} #${i}`;
        const input = large ? Buffer.concat([tarball(label), randomBytes(LARGE_BYTES)]) : tarball(label);
        return { user: i % USERS, label, input, large, runs: [], acknowledged: new Set<string>() };
      });
      // At least one kill right after a row commit and one mid-download; the others at random.
      const kinds: KillKind[] = Array.from({ length: KILLS }, (_, k) =>
        k === 0 ? 'row' : k === 1 ? 'download' : (['random', 'row', 'download'] as const)[Math.floor(rng() * 3)]!,
      );
      for (let i = kinds.length - 1; i > 0; i--) {
        const j = Math.floor(rng() * (i + 1));
        [kinds[i], kinds[j]] = [kinds[j]!, kinds[i]!];
      }
      const pauses = Array.from({ length: KILLS }, () => 1_500 + Math.floor(rng() * 3_000));
      const linkRetries = Array.from({ length: BUILDS * 4 }, () => rng() < 0.5);
      let nextLinkRetry = 0;
      const kills: KillRecord[] = [];
      const statuses = new Map<number, number>();
      const failures: string[] = [];
      let downloadKill: { hit: () => void; killed: Promise<void> } | undefined;
      let usersDone = false;

      try {
        for (let i = 0; i < WORKERS; i++) {
          const w = linuxWorker({
            url: hub.workerUrl,
            secret: WORKER_SECRET,
            name: `linux-${i}`,
            maxConcurrent: 2,
            history,
            reconnectDelayMs: 1_000,
            script: () => ({ durationMs: durations[nextDuration++ % durations.length], logLines: 2 }),
          });
          workers.push(w);
          await w.connected();
        }

        const cli = (project: Project): Promise<PublishResult> =>
          perryPublish({
            server: hub.url,
            manifest: { ...MANIFEST, targets: ['linux'] },
            credentials: CREDENTIALS,
            tarball: project.input,
            ...credentials[project.user]!,
            timeoutMs: 240_000,
            reconnectDelayMs: (n) => Math.min(500 * n, 3_000),
            onDownloadProgress: async (received, size) => {
              const kill = downloadKill;
              if (!kill || size < LARGE_BYTES / 2 || received < 256 * 1024 || received > size / 2) return;
              downloadKill = undefined;
              kill.hit();
              await kill.killed;
            },
          });

        /** A plain GET of the link, as a user would paste it, until the hub answers. */
        const fetchLink = async (project: Project, url: string): Promise<boolean> => {
          for (let tries = 0; tries < 120; tries++) {
            try {
              const res = await download(url);
              const body = res.body;
              project.runs.push(`link ${res.status}`);
              if (res.status !== 200) {
                const token = url.split('/').at(-1)!;
                const artifact = await rows(
                  hub,
                  'SELECT job_id, attempt, state, expires_at FROM artifacts WHERE token = ?',
                  [token],
                ).catch((err: Error) => err.message);
                failures.push(
                  `${project.label}: a plain GET of its cut download's link answered ${res.status} ${body.toString().slice(0, 120)} ` +
                    `(runs: ${project.runs.join(', ')}; artifact row: ${JSON.stringify(artifact)})`,
                );
                return false;
              }
              project.artifactSha = sha256(sniffDownload(body));
              return true;
            } catch {
              await sleep(500);
            }
          }
          return false;
        };

        /** One user action: run the CLI until the user has the artifact. */
        const act = async (project: Project): Promise<void> => {
          for (let run = 0; run < 40; run++) {
            const result = await cli(project);
            if (result.jobId) project.acknowledged.add(result.jobId);
            if (result.httpStatus) statuses.set(result.httpStatus, (statuses.get(result.httpStatus) ?? 0) + 1);
            if (result.exitCode === 0) {
              project.runs.push('ready');
              project.artifactSha = sha256(result.artifact!.bytes);
              return;
            }
            if (result.outcome === 'request-failed') project.runs.push(`submission ${result.requestError}`);
            else if (result.outcome === 'http-error') project.runs.push(`http ${result.httpStatus}`);
            else if (result.outcome === 'disconnected' && result.connections === 0) project.runs.push('first connect');
            else if (result.failedDownload) {
              project.runs.push(`download cut (${result.reason} at ${new Date().toISOString().slice(11, 23)})`);
              if (
                linkRetries[nextLinkRetry++ % linkRetries.length] &&
                (await fetchLink(project, result.failedDownload))
              )
                return;
            } else {
              failures.push(`${project.label}: the CLI ended with ${result.outcome}: ${result.reason}`);
              return;
            }
            await sleep(500 + Math.floor(Math.random() * 1_000)); // the user notices, and runs it again
          }
          failures.push(`${project.label}: no artifact after 40 runs (${project.runs.join(', ')})`);
        };

        // Each user's last project waits for the last kill to begin, so the users are still at work
        // for every kill however fast the hub is (a quick run once ended before the fourth).
        let lastKillBegins = (): void => undefined;
        const lastKill = new Promise<void>((resolve) => (lastKillBegins = resolve));
        const users = Array.from({ length: USERS }, async (_, u) => {
          const mine = projects.filter((p) => p.user === u);
          for (const [n, project] of mine.entries()) {
            if (n === mine.length - 1) await lastKill;
            await act(project);
          }
        });
        const allUsers = Promise.all(users).finally(() => (usersDone = true));

        /**
         * After a restart, until the next kill: the reservations of submissions that died with the
         * hub before their job row are released, and /status counts only the real workers.
         */
        let generation = 0;
        const watching: Promise<void>[] = [];
        const watchRestart = async (record: KillRecord, mine: number): Promise<void> => {
          // Of the reservations without a job row at the kill, those still pending without one.
          const dead = async () =>
            record.orphans.length === 0
              ? 0
              : Number(
                  (
                    await rows(
                      hub,
                      `SELECT COUNT(*) AS n FROM submissions s WHERE s.state = 'pending' AND s.job_id IN (?)
                        AND NOT EXISTS (SELECT 1 FROM builds b WHERE b.id = s.job_id)`,
                      [record.orphans],
                    )
                  )[0]!['n'],
                );
          try {
            record.deadReservations = record.orphans.length;
            const cleared = await whenTrue('released', async () => generation !== mine || (await dead()) === 0, 20_000);
            if (generation === mine) record.reservationsClearedMs = cleared - record.upAt;
            else record.interrupted = true;
          } catch {
            record.interrupted = generation !== mine;
          }
          const end = Date.now() + 8_000;
          while (Date.now() < end && generation === mine) {
            const n = await connectedWorkers(hub);
            if (n !== undefined && generation === mine) record.workersSeen.push(n);
            await sleep(200);
          }
        };

        /** A Bearer upload (authorized before its tarball) that stops sending: a reservation, no row. */
        const stalledToken = await hub.account('crash-stalled', 'stalled');
        const stalledPending = async () =>
          Number(
            (
              await rows(
                hub,
                `SELECT COUNT(*) AS n FROM submissions s JOIN accounts a ON a.id = s.account_id
                  WHERE a.api_token = ? AND s.state = 'pending'`,
                [stalledToken],
              )
            )[0]!['n'],
          );
        /** A Bearer upload (authorized before its tarball) that stops sending: a reservation, no row. */
        const stalledUpload = async (): Promise<void> => {
          const before = await stalledPending();
          const body = publishBody({
            manifest: JSON.stringify({ ...MANIFEST, targets: ['linux'] }),
            credentials: JSON.stringify(CREDENTIALS),
            tarball: {
              length: 4 * MiB,
              chunks: async function* () {
                yield Buffer.concat([tarball('stalled'), randomBytes(64 * 1024)]);
                await new Promise(() => undefined);
              },
            },
            apiToken: stalledToken,
          });
          void send(`${hub.url}/api/v1/build`, {
            headers: {
              'content-type': `multipart/form-data; boundary=${body.boundary}`,
              'content-length': body.length,
              authorization: `Bearer ${stalledToken}`,
            },
            body: body.chunks(),
          }).catch(() => undefined);
          await whenTrue('the stalled upload to be authorized', async () => (await stalledPending()) > before, 10_000);
        };

        const killer = (async () => {
          const proc = hub.process('hub');
          for (let k = 0; k < KILLS; k++) {
            if (k === KILLS - 1) lastKillBegins();
            await sleep(pauses[k]!);
            let kind = kinds[k]!;
            let releaseDownload: (() => void) | undefined;
            if (kind === 'row') {
              const [{ n }] = (await rows(hub, 'SELECT COUNT(*) AS n FROM builds')) as [{ n: number }];
              await whenTrue(
                'a new job row',
                async () => usersDone || Number((await rows(hub, 'SELECT COUNT(*) AS n FROM builds'))[0]!['n']) > n,
                30_000,
                5,
              ).catch(() => (kind = 'random'));
            } else if (kind === 'download') {
              // The next large download to reach its first quarter holds still until the hub is dead.
              const killed = new Promise<void>((r) => (releaseDownload = r));
              const hit = new Promise<boolean>((resolve) => (downloadKill = { hit: () => resolve(true), killed }));
              if (!(await Promise.race([hit, sleep(30_000).then(() => false)]))) {
                downloadKill = undefined;
                kind = 'random';
              }
            }
            // And one upload that stalls after its authorization: its reservation dies with the hub.
            await stalledUpload().catch((err: Error) => failures.push(err.message));
            const running = (await rows(hub, "SELECT id FROM builds WHERE status = 'running'").catch(() => [])).map(
              (r) => String(r['id']),
            );
            const orphans = (
              await rows(
                hub,
                `SELECT job_id FROM submissions s WHERE s.state = 'pending'
                  AND NOT EXISTS (SELECT 1 FROM builds b WHERE b.id = s.job_id)`,
              ).catch(() => [])
            ).map((r) => String(r['job_id']));
            const at = Date.now();
            await proc.crashAndRestart();
            releaseDownload?.();
            await proc.up();
            const upAt = await whenTrue('/status', async () => (await connectedWorkers(hub)) !== undefined, 60_000);
            await hub.reconnect();
            const record: KillRecord = {
              kind,
              at,
              upAt,
              running,
              orphans,
              redispatchMs: [],
              reservationsClearedMs: -1,
              deadReservations: 0,
              interrupted: false,
              workersSeen: [],
            };
            kills.push(record);
            watching.push(watchRestart(record, ++generation));
          }
        })().finally(() => lastKillBegins());
        await killer;
        await allUsers;
        generation += 1;
        await Promise.all(watching);

        // Re-dispatch: the first start of each build running at a crash after its restart, or its
        // completion from an upload that outlived the crash.
        const completedAt = new Map(
          (await rows(hub, 'SELECT id, completedAt FROM builds')).map((r) => [
            String(r['id']),
            Number(r['completedAt'] ?? 0),
          ]),
        );
        for (const kill of kills) {
          for (const id of kill.running) {
            const started = history.started.find((s) => s.jobId === id && s.at > kill.at)?.at;
            const done = completedAt.get(id) ?? 0;
            const at = Math.min(started ?? Infinity, done > kill.at ? done : Infinity);
            if (at !== Infinity) kill.redispatchMs.push(Math.max(0, at - kill.upAt));
          }
        }

        const all = [...projects];
        const reruns = all.reduce((n, p) => n + p.runs.length - 1, 0);
        const count = (what: string) => all.reduce((n, p) => n + p.runs.filter((r) => r.startsWith(what)).length, 0);
        for (const [k, kill] of kills.entries()) {
          console.log(
            `kill ${k + 1} (${kill.kind}): ${kill.running.length} builds running; /status answered ${kill.upAt - kill.at} ms after the kill; ` +
              `re-dispatched ${figures(kill.redispatchMs)} after /status answered; ${kill.deadReservations} reservations without a job at the kill, released ` +
              `${kill.interrupted ? '(interrupted by the next kill)' : kill.reservationsClearedMs < 0 ? 'NOT within 20 s' : `${kill.reservationsClearedMs} ms`} after; ` +
              `/status connected_workers seen: ${[...new Set(kill.workersSeen)].join(', ')}`,
          );
        }
        console.log(
          `${BUILDS} user actions, ${kills.length} kills, ${reruns} re-runs or link retries: ` +
            `${count('submission') - count('submission ECONNREFUSED')} cut submissions (and ${count('submission ECONNREFUSED')} refused while the hub was down), ` +
            `${count('first connect')} failed first connects, ` +
            `${count('download cut')} cut downloads (${count('link')} fetched again by their link), ${count('http')} HTTP refusals; ` +
            `large projects ${all.filter((p) => p.large).length}; HTTP answers ${JSON.stringify(Object.fromEntries(statuses))}`,
        );
        const sameJob = all.filter((p) => p.runs.length > 1 && p.acknowledged.size === 1).length;
        console.log(
          `${sameJob} re-run user actions got the job they had already been given (or whose row was cut off)`,
        );

        expect(failures).toEqual([]);
        expect(kills.length).toBe(KILLS);
        // Each user action: one job, whatever its runs were told, and its artifact.
        for (const p of all) {
          const jobs =
            p.acknowledged.size === 1
              ? ''
              : JSON.stringify(
                  await rows(
                    hub,
                    `SELECT b.id, b.status, b.result_delivery, b.submission_key IS NULL AS key_released, b.queuedAt,
                       b.completedAt, (SELECT GROUP_CONCAT(a.state) FROM artifacts a WHERE a.job_id = b.id) AS artifacts
                     FROM builds b WHERE b.id IN (?)`,
                    [[...p.acknowledged]],
                  ),
                );
          expect(p.acknowledged.size, `${p.label}: ${p.runs.join(', ')} ${jobs}`).toBe(1);
          expect(p.artifactSha, p.label).toBe(sha256(expectedArtifact('linux', 'linux', p.input)));
        }
        const acknowledged = new Set(all.flatMap((p) => [...p.acknowledged]));
        expect(acknowledged.size).toBe(BUILDS);
        for (const id of acknowledged) hub.acknowledged.add(id);
        // No build the users did not ask for: every row is some user action's job.
        const ids = (await rows(hub, 'SELECT id FROM builds')).map((r) => String(r['id']));
        expect(ids.filter((id) => !acknowledged.has(id))).toEqual([]);
        // Completed exactly once, announced once, counted once (usage in MySQL).
        await expectEveryJobCompletedOnce(hub, 120_000);
        expect(await hub.usage()).toBe(BUILDS);
        // No phantom workers after any restart, and all four back.
        for (const kill of kills) {
          expect(Math.max(...kill.workersSeen)).toBeLessThanOrEqual(WORKERS);
          expect(kill.deadReservations).toBeGreaterThanOrEqual(1);
          if (!kill.interrupted) expect(kill.reservationsClearedMs).toBeGreaterThanOrEqual(0);
        }
        expect((await connectedWorkers(hub)) ?? 0).toBe(WORKERS);
        // Attempts rise only with real hand-overs: at most one per start a worker saw, plus one
        // per crash in the job's life (an assignment committed, then the hub died before sending it).
        const builds = await rows(hub, 'SELECT id, attempt, retries, queuedAt, completedAt FROM builds');
        const dishonest = builds.flatMap((r) => {
          const id = String(r['id']);
          const starts = history.started.filter((s) => s.jobId === id).length;
          const crashes = kills.filter((k) => k.at >= Number(r['queuedAt']) && k.at <= Number(r['completedAt'])).length;
          const attempt = Number(r['attempt']);
          return attempt > starts + crashes || attempt < 1 || Number(r['retries']) !== 0
            ? [`${id}: attempt ${attempt}, retries ${r['retries']}, ${starts} starts, ${crashes} crashes`]
            : [];
        });
        expect(dishonest).toEqual([]);
      } finally {
        usersDone = true;
        for (const w of workers) await w.stop();
        await hub.stop();
      }
    },
  );
});
