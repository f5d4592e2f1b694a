/**
 * The verdict of a fault test, from the external history: every acknowledged job completed,
 * exactly once as CLIs saw it, announced once, and counted once as usage.
 */
import { expect } from 'vitest';
import type { ProcessHub } from '../support/process-hub.js';
import { WorkerHistory, linuxWorker, type SimulatedWorker } from '../support/rust-workers.js';
import { WORKER_SECRET } from '../support/test-hub.js';

export async function expectEveryJobCompletedOnce(hub: ProcessHub, settleMs: number): Promise<void> {
  const statuses = await hub.settle(settleMs);
  const acked = [...hub.acknowledged];
  const { completes, done, artifactsReady } = await hub.completions();
  const lost = acked.filter((id) => statuses.get(id) !== 'completed');
  const duplicated = acked.filter((id) => (completes.get(id) ?? 0) !== 1 || (done.get(id) ?? 0) !== 1);
  const announcedMore = acked.filter((id) => (artifactsReady.get(id)?.length ?? 0) > 1);
  const announcedTwice = announcedMore.length;
  console.log(
    `acknowledged ${acked.length}, completed ${acked.length - lost.length}, lost ${lost.length}, duplicate or missing completions ${duplicated.length}, artifact announced twice ${announcedTwice}`,
  );
  // A job left unfinished is explained, if at all, by the hub's own warnings: show them.
  for (const id of announcedMore) console.log(`${id}: ${await hub.record(id)}`);
  if (lost.length > 0 || duplicated.length > 0)
    for (const p of hub.processes)
      console.log(`--- ${p.name} (started ${p.starts}x), last output:\n${p.current.output().slice(-8_000)}`);
  expect(lost.map((id) => `${id}: ${statuses.get(id)}`)).toEqual([]);
  expect(duplicated.map((id) => `${id}: ${completes.get(id) ?? 0} completes, ${done.get(id) ?? 0} done`)).toEqual([]);
  // An upload of an attempt that was then run again would be announced twice (two tokens); one
  // announcement stored twice shows one token under two sequences.
  expect(announcedMore.map((id) => `${id}: artifact_ready ${artifactsReady.get(id)!.join('; ')}`)).toEqual([]);
  // Usage is counted from the done events, idempotently by job id.
  await expect.poll(() => hub.usage(), { timeout: 20_000 }).toBe(acked.length);
}

/**
 * Linux workers like the Rust one, with short scripted builds, sharing one history; spread over
 * `gateways` (default: the hub's one) in turn.
 */
export async function startWorkers(
  hub: Pick<ProcessHub, 'workerUrl'>,
  count: number,
  options: {
    readonly gateways?: readonly string[];
    readonly maxConcurrent?: number;
    /** Each build takes `buildMs` plus up to `buildSpreadMs` at random. */
    readonly buildMs?: number;
    readonly buildSpreadMs?: number;
    readonly reconnectDelayMs?: number;
    readonly history?: WorkerHistory;
  } = {},
): Promise<SimulatedWorker[]> {
  const {
    gateways = [hub.workerUrl],
    maxConcurrent = 2,
    buildMs = 50,
    buildSpreadMs = 200,
    reconnectDelayMs = 200,
  } = options;
  const history = options.history ?? new WorkerHistory();
  const workers: SimulatedWorker[] = [];
  for (let i = 0; i < count; i++) {
    const w = linuxWorker({
      url: gateways[i % gateways.length]!,
      secret: WORKER_SECRET,
      name: `linux-${i}`,
      maxConcurrent,
      history,
      reconnectDelayMs,
      script: () => ({ durationMs: buildMs + Math.floor(Math.random() * buildSpreadMs), logLines: 2 }),
    });
    workers.push(w);
    await w.connected();
  }
  return workers;
}

/** Submissions as the CLI sends them, one every `gapMs`; refused ones simply are not acknowledged. */
export async function submitSteadily(hub: ProcessHub, count: number, gapMs = 40): Promise<void> {
  for (let i = 0; i < count; i++) {
    await hub.submit(i);
    await new Promise((r) => setTimeout(r, gapMs));
  }
}
