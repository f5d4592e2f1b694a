/**
 * `npm run bench -- dispatch`. Starts its own nats-server and MariaDB, runs the hub as a child
 * process (`perry-hub start`, self-hosted: no quotas or concurrency limits) and measures:
 *
 *   0. dispatch latency at 20 and 100 builds/s through the realistic flow (simulated Rust workers
 *      download the tarball and upload an artifact, clients like `perry publish` download it),
 *      after a warm-up of its own (REALISTIC_WARM_UP);
 *   1. dispatch latency (HTTP 200 of POST /api/v1/build → `job_assign` at an idle worker) at 20
 *      and 100 jobs/s, after a warm-up, against a NATS request/reply to an echo responder at the
 *      same rate;
 *   2. a worker's log line → a watching CLI at 5,000 lines/s, against NATS publish → subscribe;
 *   3. the hub's RSS added by 10,000 idle workers, against a bare `ws` server's for 10,000 sockets;
 *   4. dispatch and GET /api/v1/status with 100,000 jobs queued, against the empty-queue figures,
 *      and `/status` once more with the deep queue alone (nothing dispatched meanwhile);
 *   5. 64 MiB artifact upload and download, against writing the same bytes to disk with SHA-256.
 *
 * `PERRY_BENCH_DISPATCH_PARTS` (comma-separated: idle, realistic, dispatch, logs, transfer, deep) runs only
 * those parts. Benchmarks are not tests: it prints figures and exits 0 whatever they are.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateSealKey } from '@perry-hub/runtime';
import { transferRun } from './artifacts.js';
import { diskWriteAndHash, natsPubSub, natsRequestReply } from './baselines.js';
import { Fleet } from './fleet.js';
import { bareWsMemory, hubWorkerMemory } from './idle.js';
import { logRun } from './logs.js';
import { realisticFleet, realisticRun, type RealisticRun } from './realistic.js';
import { insertQueued } from './queued.js';
import { cpuDuring, hubPorts, registerLicense, startHub, startInfra, type Hub, type Infra } from './stack.js';
import { machine, summarize, table, waitUpTo, type Row } from './stats.js';
import { dispatchRun, sampleStatus, status, submit } from './submit.js';

const RUN_SECONDS = 10;
const BASELINE_SECONDS = 5;
const STATUS_PER_SECOND = 10;
/**
 * The 100 jobs/s runs that also time `/status`, empty queue and deep: 300 requests, so their
 * p99 is not just the second-worst answer, and one full collection of the deep queue's heap
 * (about 90 ms of marking on the event loop, once every few tens of seconds) weighs what it
 * does in a longer run, whether or not it falls in the window.
 */
const STATUS_RUN_SECONDS = 30;
/**
 * `/status` with the deep queue and nothing else to do, after the 100 jobs/s run: what the
 * queue's depth costs the route, apart from the event loop it shares with dispatch.
 */
const QUIET_STATUS_SECONDS = 20;
const FLEET = { workers: 20, maxConcurrent: 50 };
/**
 * Submitters, round robin: one license's submissions serialize on its row lock in the license
 * service (authorization and usage counting), which caps a single license well below 100/s here.
 */
const LICENSES = 20;
const IDLE_WORKERS = 10_000;
/** Simulated Rust workers for the realistic flow, and the builds each runs at once. */
const REALISTIC = { workers: 10, slots: 20 };
/**
 * Builds run through the realistic flow before it is measured, as the dispatch-only runs have
 * theirs: a hub's first builds after its start wait for V8 to compile its code (the first
 * seconds at 20 builds/s dispatch in up to 90 ms, the rest within 20), which is the start's
 * cost, not the steady rate's. Their figures are printed in the note.
 */
const REALISTIC_WARM_UP = { perSecond: 20, seconds: 5 };
const LOG_LINES_PER_SECOND = 5_000;
const LOG_SECONDS = 5;
const ARTIFACT_BYTES = 64 * 2 ** 20;
const QUEUED_JOBS = 100_000;
/** A command to a worker is about this long (the job_assign command with its manifest). */
const REQUEST_BYTES = 1_024;

const began = performance.now();
const say = (text: string) =>
  process.stderr.write(`[bench dispatch ${((performance.now() - began) / 1000).toFixed(0).padStart(3)} s] ${text}\n`);

async function connectFleet(hub: Hub): Promise<Fleet> {
  const before = (await status(hub)).connected_workers;
  const fleet = new Fleet(hub.workerUrl, FLEET.workers, FLEET.maxConcurrent);
  const ok = await waitUpTo(async () => (await status(hub)).connected_workers >= before + FLEET.workers, 30_000, 100);
  if (!ok) throw new Error('the bench workers did not register');
  return fleet;
}

/**
 * The parts, in the order they run; `PERRY_BENCH_DISPATCH_PARTS=idle,deep` runs some of them
 * (`deep` takes its baseline from the 100 jobs/s run, so it runs that too).
 */
export const PARTS = ['idle', 'realistic', 'dispatch', 'logs', 'transfer', 'deep'] as const;
type Part = (typeof PARTS)[number];

function selectedParts(): ReadonlySet<Part> {
  const raw = process.env['PERRY_BENCH_DISPATCH_PARTS']?.trim();
  if (!raw) return new Set(PARTS);
  const names = raw.split(',').map((n) => n.trim());
  const unknown = names.filter((n) => !(PARTS as readonly string[]).includes(n));
  if (unknown.length > 0) {
    throw new Error(`PERRY_BENCH_DISPATCH_PARTS: unknown part(s) ${unknown.join(', ')}; parts: ${PARTS.join(', ')}`);
  }
  return new Set(names as Part[]);
}

function realisticRow(perSecond: number, r: RealisticRun, cpu: string, warm?: RealisticRun): Row {
  const goalMs = perSecond >= 100 ? 50 : 20;
  const kept = r.completed === r.offered;
  return {
    metric: `dispatch p99 @ ${perSecond} builds/s, realistic`,
    value: r.dispatch.p99,
    baseline: NaN,
    unit: 'ms',
    goal: { text: `<= ${goalMs} ms, all completed`, met: r.dispatch.p99 <= goalMs && kept },
    note:
      `p50 ${r.dispatch.p50.toFixed(1)} ms; ${r.completed} of ${r.offered} builds completed (${r.completedPerSecond.toFixed(1)}/s), ` +
      `${r.failed} failed${r.firstFailure ? ` (${r.firstFailure})` : ''}; submission to artifact downloaded p50 ` +
      `${r.build.p50.toFixed(0)} ms p99 ${r.build.p99.toFixed(0)} ms; load average ${r.loadAverage.toFixed(2)} after; CPU during the run: ${cpu}, clients and workers ${r.clientCpuPercent.toFixed(0)}%` +
      (warm
        ? `; after a warm-up of ${warm.offered} builds at ${REALISTIC_WARM_UP.perSecond}/s (the first builds after the hub's start, ` +
          `their code, the hub's and the clients', not yet compiled: dispatch p50 ${warm.dispatch.p50.toFixed(1)} ms p99 ` +
          `${warm.dispatch.p99.toFixed(1)} ms, ${warm.completed} of ${warm.offered} completed)`
        : ''),
  };
}

const runNote = (r: Awaited<ReturnType<typeof dispatchRun>>) =>
  `${r.latency.count} jobs (load average ${r.loadAverage.toFixed(2)} after), max ${r.latency.max.toFixed(1)} ms, ` +
  `${r.early} assigned before their 200 arrived, ` +
  `${r.missing} never assigned, ${r.failed} submissions failed${r.firstFailure ? ` (${r.firstFailure})` : ''}; POST /api/v1/build p50 ${r.submit.p50.toFixed(1)} ms p99 ${r.submit.p99.toFixed(1)} ms`;

async function run(dir: string, infra: Infra, hubs: Hub[], fleets: Fleet[]): Promise<Row[]> {
  const parts = selectedParts();
  const credentialsKey = generateSealKey();
  const rows: Row[] = [];

  let bare: Awaited<ReturnType<typeof bareWsMemory>> | undefined;
  if (parts.has('idle')) {
    say('idle memory: 10,000 plain ws connections to a bare ws server');
    bare = await bareWsMemory(IDLE_WORKERS);
  }
  say('starting the hub');
  const hub = await startHub(infra, join(dir, 'hub'), await hubPorts(), credentialsKey);
  hubs.push(hub);
  const licenses: string[] = [];
  for (let i = 0; i < LICENSES; i++) licenses.push(await registerLicense(hub));
  if (bare) {
    say('idle memory: 10,000 workers said hello to the hub');
    const idle = await hubWorkerMemory(hub, IDLE_WORKERS);
    rows.push({
      metric: 'RSS added by 10k idle workers',
      value: idle.addedMiB,
      baseline: bare.addedMiB,
      unit: 'MiB',
      goal: { text: '<= 256 MiB', met: idle.addedMiB <= 256 },
      note:
        `hub ${idle.beforeMiB.toFixed(0)} -> ${idle.afterMiB.toFixed(0)} MiB (${idle.opened} workers); ` +
        `baseline: bare ws server ${bare.beforeMiB.toFixed(0)} -> ${bare.afterMiB.toFixed(0)} MiB (${bare.opened} plain connections)`,
    });
    rows.push({
      metric: 'hub CPU, 10k idle workers',
      value: idle.idleCpuPercent,
      baseline: NaN,
      unit: '% of a core',
      goal: { text: '<= 5%', met: idle.idleCpuPercent <= 5 },
      note: 'over 5 s, after the hub counted every worker and 3 s passed',
    });
  }

  if (parts.has('realistic')) {
    say('dispatch through the realistic flow at 20 and 100 builds/s');
    const base = (await status(hub)).connected_workers;
    const workers = await realisticFleet(hub, REALISTIC.workers, REALISTIC.slots);
    try {
      say('warm-up');
      const warm = await realisticRun(hub, workers, licenses, REALISTIC_WARM_UP.perSecond, REALISTIC_WARM_UP.seconds);
      for (const perSecond of [20, 100]) {
        const r = await cpuDuring({ hub: hub.child.pid, 'nats-server': infra.nats.pid, mariadb: infra.db.pid }, () =>
          realisticRun(hub, workers, licenses, perSecond, RUN_SECONDS),
        );
        rows.push(
          realisticRow(perSecond, r.result, r.cpu, perSecond === REALISTIC_WARM_UP.perSecond ? warm : undefined),
        );
      }
    } finally {
      await workers.close();
      // The next fleet counts its workers from the hub's figure: these must be gone from it first.
      await waitUpTo(async () => (await status(hub)).connected_workers <= base, 30_000, 100);
    }
  }

  const fleet = await connectFleet(hub);
  fleets.push(fleet);
  const pids = { hub: hub.child.pid, 'nats-server': infra.nats.pid, mariadb: infra.db.pid };
  let d100: Awaited<ReturnType<typeof dispatchRun>> | undefined;
  if (parts.has('dispatch') || parts.has('deep')) {
    say('warm-up');
    await dispatchRun(hub, fleet, licenses, 20, 3);
    say('dispatch latency, and its NATS request/reply baseline');
    const rr20 = await natsRequestReply(infra.connectNats, 20, BASELINE_SECONDS, REQUEST_BYTES);
    const d20 = await dispatchRun(hub, fleet, licenses, 20, RUN_SECONDS);
    const rr100 = await natsRequestReply(infra.connectNats, 100, BASELINE_SECONDS, REQUEST_BYTES);
    const measured = await cpuDuring(pids, () =>
      dispatchRun(hub, fleet, licenses, 100, STATUS_RUN_SECONDS, STATUS_PER_SECOND),
    );
    d100 = measured.result;
    rows.push(
      {
        metric: 'dispatch p50 @ 20 jobs/s',
        value: d20.latency.p50,
        baseline: rr20.p50,
        unit: 'ms',
        note: runNote(d20),
      },
      {
        metric: 'dispatch p99 @ 20 jobs/s',
        value: d20.latency.p99,
        baseline: rr20.p99,
        unit: 'ms',
        goal: { text: '<= 20 ms', met: d20.latency.p99 <= 20 },
      },
      {
        metric: 'dispatch p50 @ 100 jobs/s',
        value: d100.latency.p50,
        baseline: rr100.p50,
        unit: 'ms',
        note: runNote(d100),
      },
      {
        metric: 'dispatch p99 @ 100 jobs/s',
        value: d100.latency.p99,
        baseline: rr100.p99,
        unit: 'ms',
        goal: { text: '<= 50 ms', met: d100.latency.p99 <= 50 },
        note:
          `CPU during the run: ${measured.cpu}; ` +
          `baseline: NATS request/reply (${REQUEST_BYTES} B) to an echo responder at the same rate; ` +
          'the jobs are dispatched only (the realistic flow with transfers is `npm run bench -- cost`)',
      },
      {
        metric: 'GET /api/v1/status p99, empty queue',
        value: d100.status!.p99,
        baseline: NaN,
        unit: 'ms',
        note: `${d100.status!.count} requests at ${STATUS_PER_SECOND}/s during the 100 jobs/s run, p50 ${d100.status!.p50.toFixed(1)} ms`,
      },
    );
  }

  if (parts.has('logs') || parts.has('transfer')) {
    fleet.holdNext = 1;
    const accepted = await submit(hub, licenses[0]!, ['linux']);
    const job = await fleet.held(accepted.jobId);
    if (parts.has('logs')) {
      say('log lines to a CLI, and the NATS publish/subscribe baseline');
      const logs = await logRun(hub, job, LOG_LINES_PER_SECOND, LOG_SECONDS);
      const pubsub = await natsPubSub(infra.connectNats, LOG_LINES_PER_SECOND, LOG_SECONDS, logs.frameBytes);
      rows.push(
        { metric: 'log line -> CLI p50 @ 5000/s', value: logs.latency.p50, baseline: pubsub.p50, unit: 'ms' },
        {
          metric: 'log line -> CLI p99 @ 5000/s',
          value: logs.latency.p99,
          baseline: pubsub.p99,
          unit: 'ms',
          goal: { text: '<= 50 ms', met: logs.latency.p99 <= 50 },
          note:
            `${logs.sent} lines sent, ${logs.lost} not received, max ${logs.latency.max.toFixed(1)} ms; ` +
            `baseline: NATS publish -> subscribe of ${logs.frameBytes} B at the same rate (max ${pubsub.max.toFixed(1)} ms)`,
        },
      );
    }
    if (parts.has('transfer')) {
      say('64 MiB artifact transfer, and the disk write + SHA-256 baseline');
      const data = randomBytes(ARTIFACT_BYTES);
      const disk = await diskWriteAndHash(join(dir, 'baseline.bin'), data);
      const transfer = await transferRun(job, data, { hub: hub.child.pid, 'nats-server': infra.nats.pid });
      rows.push(
        ...(
          [
            ['artifact upload, base64', transfer.uploadBase64, 0.3],
            ['artifact upload, raw', transfer.uploadRaw, 0.3],
            ['artifact download, base64', transfer.downloadBase64, 0.5],
            ['artifact download, raw', transfer.downloadRaw, 0.5],
          ] as const
        ).map(([metric, { mibPerSec, cpuMsPerMiB }, share]) => ({
          metric: `${metric} (64 MiB)`,
          value: mibPerSec,
          baseline: disk,
          unit: 'MiB/s',
          goal: { text: `>= ${share * 100}% of baseline`, met: mibPerSec >= share * disk },
          note:
            `CPU per MiB: ${Object.entries(cpuMsPerMiB)
              .map(([name, ms]) => `${name} ${ms.toFixed(2)} ms`)
              .join(', ')}; median of 3 transfers` +
            (metric === 'artifact download, raw'
              ? '; baseline: writing the same 64 MiB to a file with SHA-256; MiB/s of artifact (decoded) bytes'
              : ''),
        })),
      );
    }
    fleet.release(job.jobId);
  }

  if (parts.has('deep') && d100) {
    say('100,000 queued jobs: stopping the hub, inserting them, starting it again');
    fleet.close();
    await hub.stop();
    const insertMs = await insertQueued(infra, QUEUED_JOBS);
    const restartedAt = performance.now();
    const deep = await startHub(infra, join(dir, 'hub'), await hubPorts(), credentialsKey);
    hubs.push(deep);
    const deepFleet = await connectFleet(deep);
    fleets.push(deepFleet);
    const probe = await submit(deep, licenses[0]!, ['linux']);
    await waitUpTo(() => deepFleet.assignedAt.has(probe.jobId), 120_000);
    const firstDispatchMs = (deepFleet.assignedAt.get(probe.jobId) ?? NaN) - restartedAt;
    const queueLength = (await status(deep)).queue_length;
    await dispatchRun(deep, deepFleet, licenses, 20, 3);
    say('dispatch and status with 100,000 queued jobs');
    const deepPids = { ...pids, hub: deep.child.pid };
    const { result: dq, cpu: cpuDeep } = await cpuDuring(deepPids, () =>
      dispatchRun(deep, deepFleet, licenses, 100, STATUS_RUN_SECONDS, STATUS_PER_SECOND),
    );
    say('status alone with 100,000 queued jobs');
    const quietStatusMs: number[] = [];
    const { cpu: cpuQuiet } = await cpuDuring(deepPids, () =>
      sampleStatus(deep, STATUS_PER_SECOND, QUIET_STATUS_SECONDS, quietStatusMs),
    );
    const quiet = summarize(quietStatusMs);
    rows.push(
      {
        metric: 'dispatch p99 @ 100 jobs/s, 100k queued',
        value: dq.latency.p99,
        baseline: d100.latency.p99,
        unit: 'ms',
        goal: { text: '<= 2x baseline', met: dq.latency.p99 <= 2 * d100.latency.p99 },
        note:
          `${runNote(dq)}; CPU during the run: ${cpuDeep}; queue_length ${queueLength}; rows inserted in ${(insertMs / 1000).toFixed(1)} s; ` +
          `first dispatch ${(firstDispatchMs / 1000).toFixed(1)} s after the restart began; baseline: the empty-queue p99 above`,
      },
      {
        metric: 'GET /api/v1/status p99, 100k queued',
        value: dq.status!.p99,
        baseline: d100.status!.p99,
        unit: 'ms',
        goal: { text: '< 10 ms', met: dq.status!.p99 < 10 },
        note:
          `${dq.status!.count} requests at ${STATUS_PER_SECOND}/s during the 100 jobs/s run, p50 ${dq.status!.p50.toFixed(1)} ms; ` +
          `baseline: the same during the empty-queue run (p50 ${d100.status!.p50.toFixed(1)} ms)`,
      },
      {
        metric: 'GET /api/v1/status p99, 100k queued, alone',
        value: quiet.p99,
        baseline: d100.status!.p99,
        unit: 'ms',
        goal: { text: '< 10 ms', met: quiet.p99 < 10 },
        note:
          `${quiet.count} requests at ${STATUS_PER_SECOND}/s after the 100 jobs/s run, nothing else submitted, p50 ${quiet.p50.toFixed(1)} ms; ` +
          `CPU meanwhile: ${cpuQuiet}; baseline: the empty queue during the 100 jobs/s run`,
      },
    );
  }
  return rows;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'perry-hub-bench-dispatch-'));
  const hubs: Hub[] = [];
  const fleets: Fleet[] = [];
  let infra: Infra | undefined;
  try {
    say(machine());
    infra = await startInfra(dir);
    const rows = await run(dir, infra, hubs, fleets);
    console.log('\ndispatch benchmark (perry-hub start as a child process, its own nats-server and MariaDB)\n');
    console.log(table(rows));
    console.log(`\n${machine()}`);
  } catch (err) {
    console.error(`dispatch benchmark failed: ${(err as Error).stack ?? String(err)}`);
    for (const hub of hubs) console.error(`hub output (tail):\n${hub.output().slice(-4_000)}`);
    process.exitCode = 1;
  } finally {
    for (const fleet of fleets) fleet.close();
    for (const hub of hubs) await hub.stop();
    await infra?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
