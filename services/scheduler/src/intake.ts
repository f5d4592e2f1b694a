/** The leader's intake: a submitted job, as the ingest recorded it, joins the queue. */
import type { JsMsg } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import {
  INTAKE_POSITION_HEADER,
  JobIntake,
  topology,
  topologyNames,
  type ConsumerSpec,
  type QueuePositionNotice,
} from '@perry-hub/contracts';
import { isValid, recreateConsumer, retrying, strandedConsumer, type Logger } from '@perry-hub/runtime';
import { enqueue, enqueueRow, type Context } from './state.js';

/**
 * At most this many queued jobs keep their job_assign payload in memory; the others' is read at
 * dispatch. Counted among the jobs holding one, so a deep queue of jobs no worker serves (read
 * from MySQL without payloads) does not cost every other job a read on its way to a worker.
 */
const PAYLOAD_MEMORY_MAX_JOBS = 1_000;
const decoder = new TextDecoder();
/** How long after a reconnect the intake consumer is looked at while JetStream does not answer. */
const STRANDED_CHECK_FOR_MS = 30_000;

/** The leader's intake consumer, as the topology declares it. */
export function intakeConsumer(prefix: string): ConsumerSpec {
  const durable = topologyNames(prefix).schedulerIntakeConsumer;
  return topology(prefix).find((e): e is ConsumerSpec => e.kind === 'consumer' && e.durable === durable)!;
}

/**
 * Before the leader consumes: an intake consumer its stream fell behind (a nats-server that
 * restored the stream at an earlier sequence after a kill -9, see work-queue.ts) would skip the
 * jobs submitted next, so it is created again; it then delivers whatever the stream holds.
 */
export async function mendIntake(nc: NatsConnection, spec: ConsumerSpec, log: Logger): Promise<void> {
  const stranded = await strandedConsumer(nc, spec);
  if (stranded === undefined) return;
  log.warn(
    { stranded },
    'the intake consumer misses messages its stream holds (nats-server restored the stream at an earlier sequence): creating it again',
  );
  await recreateConsumer(nc, spec);
}

/** After a reconnect: why the intake consumer misses messages, or undefined (also when JetStream does not answer). */
export async function intakeStranded(
  nc: NatsConnection,
  spec: ConsumerSpec,
  log: Logger,
  cancelled: () => boolean,
): Promise<string | undefined> {
  try {
    return await retrying(() => strandedConsumer(nc, spec), { forMs: STRANDED_CHECK_FOR_MS, cancelled });
  } catch (err) {
    log.warn({ err }, 'could not check the intake consumer after a reconnect');
    return undefined;
  }
}

/** Acknowledged once queued (or known); retried later while its row cannot be read. */
export async function onIntake(ctx: Context, m: JsMsg): Promise<void> {
  try {
    const intake: unknown = JSON.parse(decoder.decode(m.data));
    if (!isValid(JobIntake, intake)) return m.term();
    if (ctx.queued.has(intake.jobId) || ctx.running.has(intake.jobId)) {
      m.ack();
      return notifyPosition(ctx, m, intake.jobId);
    }
    if (intake.tarballRef !== undefined) {
      // The message carries what the queue needs, as recorded: no read of the row. A stale one
      // (the job moved on meanwhile) fails the assignment's compare-and-set, which re-reads.
      enqueue(ctx, {
        jobId: intake.jobId,
        licenseKey: intake.licenseKey,
        tier: intake.tier,
        targets: intake.targets,
        stage: 'build',
        attempt: 0,
        retries: 0,
        queuedAt: intake.queuedAt,
        startedAt: null,
        tarballRef: intake.tarballRef,
        ...(intake.buildType === 'plugin' ? { buildType: 'plugin' as const } : {}),
        ...(intake.callback ? { callback: true as const } : {}),
        // Kept for a short queue only: a deep one would hold every manifest in memory.
        ...(intake.payload && ctx.heldPayloads < PAYLOAD_MEMORY_MAX_JOBS
          ? {
              payload: {
                manifest: intake.payload.manifest,
                credentials: Buffer.from(intake.payload.credentialsSealed, 'base64'),
              },
            }
          : {}),
      });
    } else {
      const row = await ctx.store.get(intake.jobId);
      if (!row) return m.nak(1_000); // the record is written first; give it a moment
      // A duplicate delivery may have enqueued (or even dispatched) it meanwhile.
      if (row.status === 'queued' && !ctx.running.has(row.id)) enqueueRow(ctx, row);
    }
    m.ack();
    notifyPosition(ctx, m, intake.jobId);
  } catch (err) {
    ctx.log.error({ err }, 'intake message failed');
    m.nak(1_000);
  }
}

/**
 * The job's place, to the ingest instance the intake message names (it waits for it to answer
 * the submission, instead of asking): 1-based, 0 once running. Nothing without the header.
 */
function notifyPosition(ctx: Context, m: JsMsg, jobId: string): void {
  const instance = m.headers?.get(INTAKE_POSITION_HEADER);
  if (!instance) return;
  const notice: QueuePositionNotice = { jobId, position: ctx.queue.position(jobId) };
  try {
    ctx.nc.publish(ctx.subjects.positions(instance), JSON.stringify(notice));
  } catch (err) {
    // Not a subject token, or the connection closing: the ingest asks after its wait.
    ctx.log.warn({ err: (err as Error).message, jobId }, 'queue position not sent');
  }
}
