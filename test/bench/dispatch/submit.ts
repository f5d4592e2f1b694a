/**
 * Submitting builds as `perry publish` does (its exact multipart, test/support/perry-cli-wire.ts)
 * and timing the way from an accepted submission to `job_assign` at a worker.
 */
import { loadavg } from 'node:os';
import { buildRequest } from '../../support/perry-cli-wire.js';
import type { Fleet } from './fleet.js';
import type { Hub } from './stack.js';
import { atRate, summarize, waitUpTo, type Summary } from './stats.js';

/**
 * A gzip header and a few bytes: the hub checks the magic, the workers here never untar. Each
 * submission its own source: identical ones would be one build (a retry).
 */
let submitted = 0;
const tarball = () =>
  Buffer.concat([Buffer.from([0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 3]), Buffer.from(`bench project ${++submitted}`)]);

/** A saturated hub must not hold the benchmark: what takes longer than this counts as failed. */
const TIMEOUT_MS = 10_000;

export interface Accepted {
  readonly jobId: string;
  /** performance.now() when the 200 arrived. */
  readonly at: number;
}

export async function submit(hub: Hub, licenseKey: string, targets: readonly string[]): Promise<Accepted> {
  const manifest = { app_name: 'Bench', bundle_id: 'com.example.bench', version: '1', entry: 'src/main.ts', targets };
  const request = buildRequest({ manifest, credentials: {}, tarball: tarball(), licenseKey });
  const res = await fetch(`${hub.url}/api/v1/build`, { ...request, signal: AbortSignal.timeout(TIMEOUT_MS) });
  const text = await res.text();
  const at = performance.now();
  if (res.status !== 200) throw new Error(`submission failed: ${res.status} ${text}`);
  return { jobId: (JSON.parse(text) as { job_id: string }).job_id, at };
}

export interface DispatchRun {
  /** 200 of POST /api/v1/build → `job_assign` at the worker (0 when the assignment came first). */
  readonly latency: Summary;
  /** POST /api/v1/build itself. */
  readonly submit: Summary;
  /** Assignments that arrived before the submission's 200 did. */
  readonly early: number;
  /** Jobs never assigned within the wait. */
  readonly missing: number;
  /** Submissions that were refused or failed, and the first reason. */
  readonly failed: number;
  readonly firstFailure: string | undefined;
  /** GET /api/v1/status latency, sampled during the run (if asked for). */
  readonly status: Summary | undefined;
  /** The machine's 1-minute load average right after the run: other work on it shows here. */
  readonly loadAverage: number;
}

/** Submit Linux builds at a steady rate and time each one's dispatch. */
export async function dispatchRun(
  hub: Hub,
  fleet: Fleet,
  licenseKeys: readonly string[],
  perSecond: number,
  seconds: number,
  statusPerSecond = 0,
): Promise<DispatchRun> {
  const accepted: Accepted[] = [];
  const submitMs: number[] = [];
  const statusMs: number[] = [];
  const failures: string[] = [];
  const sampling = statusPerSecond > 0 ? sampleStatus(hub, statusPerSecond, seconds, statusMs) : undefined;
  await atRate(perSecond, seconds, async (i) => {
    const t0 = performance.now();
    try {
      const a = await submit(hub, licenseKeys[i % licenseKeys.length]!, ['linux']);
      submitMs.push(a.at - t0);
      accepted.push(a);
    } catch (err) {
      failures.push((err as Error).message);
    }
  });
  await sampling;
  await waitUpTo(() => accepted.every((a) => fleet.assignedAt.has(a.jobId)), 15_000);
  const latency: number[] = [];
  let early = 0;
  for (const a of accepted) {
    const at = fleet.assignedAt.get(a.jobId);
    if (at === undefined) continue;
    if (at < a.at) early++;
    latency.push(Math.max(0, at - a.at));
  }
  return {
    latency: summarize(latency),
    submit: summarize(submitMs),
    early,
    missing: accepted.length - latency.length,
    failed: failures.length,
    firstFailure: failures[0],
    status: sampling ? summarize(statusMs) : undefined,
    loadAverage: loadavg()[0] ?? NaN,
  };
}

export async function sampleStatus(hub: Hub, perSecond: number, seconds: number, into: number[]): Promise<void> {
  await atRate(perSecond, seconds, async () => {
    const t0 = performance.now();
    try {
      const res = await fetch(`${hub.url}/api/v1/status`, { signal: AbortSignal.timeout(TIMEOUT_MS) });
      await res.text();
      if (res.ok) into.push(performance.now() - t0);
    } catch {
      // a refused or timed-out request is not a latency; the sample count shows it
    }
  });
}

export interface StatusBody {
  queue_length: number;
  connected_workers: number;
}

export async function status(hub: Hub): Promise<StatusBody> {
  const res = await fetch(`${hub.url}/api/v1/status`);
  return (await res.json()) as StatusBody;
}
