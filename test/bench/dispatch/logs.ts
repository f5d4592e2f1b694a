/**
 * A worker's log lines to a watching CLI: the worker sends `log` frames at a steady rate on a
 * running job, each line carrying its sequence number; the CLI, subscribed on `/ws` like `perry
 * publish`, times each line's arrival against its send time (same process, same clock).
 */
import { randomBytes } from 'node:crypto';
import * as wire from '../../support/rust-wire.js';
import type { Assignment } from './fleet.js';
import { watchJob } from './fleet.js';
import type { Hub } from './stack.js';
import { atRate, sleep, summarize, waitUpTo, type Summary } from './stats.js';

export interface LogRun {
  readonly latency: Summary;
  readonly sent: number;
  readonly lost: number;
  /** Length of one `log` frame, for a baseline of the same size. */
  readonly frameBytes: number;
}

const line = (run: string, seq: number) => `bench ${run} line ${seq} `.padEnd(100, '.');

export async function logRun(hub: Hub, job: Assignment, perSecond: number, seconds: number): Promise<LogRun> {
  const run = randomBytes(4).toString('hex');
  const sentAt: number[] = [];
  const samples: number[] = [];
  const pattern = new RegExp(`bench ${run} line (\\d+) `);
  // Earlier lines of the job (replayed to a new subscriber) belong to another run: not counted.
  const cli = await watchJob(hub.cliUrl, job.jobId, (text, at) => {
    const m = text.includes('"type":"log"') ? pattern.exec(text) : null;
    if (m) samples.push(at - sentAt[Number(m[1])]!);
  });
  try {
    await sleep(500); // the CLI's consumer is live: nothing is measured as replay
    await atRate(perSecond, seconds, async (seq) => {
      sentAt[seq] = performance.now();
      job.worker.send(wire.log(job.jobId, 'compiling', line(run, seq), 'stdout'));
    });
    await waitUpTo(() => samples.length >= sentAt.length, 15_000);
    return {
      latency: summarize(samples),
      sent: sentAt.length,
      lost: sentAt.length - samples.length,
      frameBytes: wire.log(job.jobId, 'compiling', line(run, 0), 'stdout').length,
    };
  } finally {
    cli.terminate();
  }
}
