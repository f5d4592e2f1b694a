/**
 * Dispatch under the realistic flow: builds offered at a steady rate by clients that do what
 * `perry publish` does (submit, follow the job over the WebSocket, download the artifact), run
 * by simulated Rust Linux workers that download the tarball, send log lines and upload an
 * artifact. Dispatch is the submission's 200 to the `job_assign` at the worker, as in submit.ts;
 * the rest of each build runs meanwhile, so the hub does all of a build's work at that rate.
 */
import { createHash, randomBytes } from 'node:crypto';
import { loadavg } from 'node:os';
import { perryPublish, type PublishResult } from '../../support/perry-cli.js';
import { linuxWorker, type SimulatedWorker } from '../../support/rust-workers.js';
import { WORKER_SECRET, type Hub } from './stack.js';
import { atRate, summarize, type Summary } from './stats.js';

const MANIFEST = { app_name: 'Realistic', bundle_id: 'com.example.realistic', version: '1', entry: 'src/main.ts' };
const TARBALL_BYTES = 256 * 1024;
const BUILD_TIMEOUT_MS = 60_000;

export interface RealisticRun {
  /** 200 of POST /api/v1/build → `job_assign` at the worker (0 when the assignment came first). */
  readonly dispatch: Summary;
  /** Submission to the artifact downloaded, per build. */
  readonly build: Summary;
  readonly offered: number;
  readonly completed: number;
  readonly failed: number;
  readonly firstFailure: string | undefined;
  /** Builds completed per second, from the first submission to the last artifact downloaded. */
  readonly completedPerSecond: number;
  readonly loadAverage: number;
  /** CPU of this process (the clients and workers) during the run, percent of one core. */
  readonly clientCpuPercent: number;
}

export interface RealisticFleet {
  readonly workers: SimulatedWorker[];
  readonly assignedAt: Map<string, number>;
  close(): Promise<void>;
}

/** Simulated Rust Linux workers, each with `slots` concurrent builds, that record when each job was assigned. */
export async function realisticFleet(hub: Hub, count: number, slots: number): Promise<RealisticFleet> {
  const assignedAt = new Map<string, number>();
  const workers = Array.from({ length: count }, (_, i) =>
    linuxWorker({
      url: hub.workerUrl,
      secret: WORKER_SECRET,
      name: `realistic-${i}`,
      maxConcurrent: slots,
      reconnectDelayMs: 200,
      script: (job) => {
        assignedAt.set(job.job_id, performance.now());
        return { durationMs: 5, logLines: 3 };
      },
    }),
  );
  await Promise.all(workers.map((w) => w.connected()));
  return { workers, assignedAt, close: async () => void (await Promise.all(workers.map((w) => w.stop()))) };
}

let built = 0;

/** Which step a failed build stopped at: whether it was assigned, and the last thing its CLI heard. */
function whereItStopped(result: PublishResult, fleet: RealisticFleet): string {
  if (result.jobId === undefined) return 'not accepted';
  const last = result.transcript.at(-1);
  return [
    `job ${result.jobId}`,
    fleet.assignedAt.has(result.jobId) ? 'assigned' : 'never assigned',
    `${result.connections} WebSocket connection(s)`,
    last === undefined ? 'no message heard' : `last heard ${last.length > 160 ? `${last.slice(0, 160)}...` : last}`,
  ].join(', ');
}

export async function realisticRun(
  hub: Hub,
  fleet: RealisticFleet,
  licenseKeys: readonly string[],
  perSecond: number,
  seconds: number,
): Promise<RealisticRun> {
  const acceptedAt = new Map<string, number>();
  const buildMs: number[] = [];
  const failures: string[] = [];
  let completed = 0;
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  let lastDone = t0;
  await atRate(perSecond, seconds, async (i) => {
    const n = ++built;
    const tarball = Buffer.concat([
      Buffer.from([0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0, 0x03]),
      createHash('sha256').update(`realistic ${n} ${Date.now()}`).digest(),
      randomBytes(TARBALL_BYTES - 42),
    ]);
    const started = performance.now();
    const result = await perryPublish({
      server: hub.url,
      manifest: { ...MANIFEST, version: String(n), targets: ['linux'] },
      credentials: {},
      tarball,
      licenseKey: licenseKeys[i % licenseKeys.length]!,
      timeoutMs: BUILD_TIMEOUT_MS,
      onAccepted: (jobId) => acceptedAt.set(jobId, performance.now()),
    });
    if (result.exitCode === 0 && result.artifact) {
      completed++;
      lastDone = performance.now();
      buildMs.push(lastDone - started);
    } else {
      failures.push(`${result.outcome}: ${result.reason} (${whereItStopped(result, fleet)})`);
    }
  });
  const cpu = process.cpuUsage(cpu0);
  const clientCpuPercent = ((cpu.user + cpu.system) / 1000 / (performance.now() - t0)) * 100;
  const dispatch: number[] = [];
  for (const [jobId, at] of acceptedAt) {
    const assigned = fleet.assignedAt.get(jobId);
    if (assigned !== undefined) dispatch.push(Math.max(0, assigned - at));
  }
  return {
    dispatch: summarize(dispatch),
    build: summarize(buildMs),
    offered: Math.round(perSecond * seconds),
    completed,
    failed: failures.length,
    firstFailure: failures[0],
    completedPerSecond: completed / ((lastDone - t0) / 1000),
    loadAverage: loadavg()[0] ?? NaN,
    clientCpuPercent,
  };
}
