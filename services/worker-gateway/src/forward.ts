/**
 * The two ways a worker's words leave the gateway: appended to the job's event log (progress the
 * CLI watches) or handed to the scheduler (outcomes it decides about). Both retry while their
 * peer is away, because a scheduler failing over or a JetStream leader election takes seconds,
 * and a build's `complete` must not be lost to that.
 */
import {
  EVENT_BATCH_HEADER,
  joinEvents,
  reclaimJobEndpoint,
  workerEventEndpoint,
  type ReclaimJobReply,
  type ReclaimJobRequest,
  type WorkerEvent,
} from '@perry-hub/contracts';
import { appendOnce, call, retrying } from '@perry-hub/runtime';
import type { GatewayContext } from './context.js';

const encoder = new TextEncoder();

/**
 * Appends wire messages to the job's log as one entry (see EVENT_BATCH_HEADER): one publish and
 * one ack for a burst. `msgId` dedupes a retried append that was in fact stored (JetStream's
 * duplicate window; see `appendOnce`); a retry carries the same messages, so it is the same entry.
 */
export async function appendEvents(
  ctx: GatewayContext,
  jobId: string,
  events: readonly string[],
  msgId: string,
): Promise<void> {
  const subject = ctx.subjects.jobEvents(jobId);
  const payload = encoder.encode(joinEvents(events));
  const extra = events.length > 1 ? { [EVENT_BATCH_HEADER]: String(events.length) } : undefined;
  try {
    await appendOnce((id) => ctx.events.publish(subject, payload, id, extra), {
      msgID: msgId,
      forMs: ctx.config.schedulerRetryMs,
      cancelled: ctx.stopping,
    });
  } catch (err) {
    ctx.log.error({ err, jobId }, 'event not appended to the job log');
  }
}

/** Resolves when the scheduler has the event; throws when it could not be delivered in time. */
export async function forwardToScheduler(ctx: GatewayContext, event: WorkerEvent): Promise<void> {
  const type = event.message['type'];
  try {
    const ack = await retrying(() => call(ctx.nc, ctx.subjects, workerEventEndpoint, event), {
      forMs: ctx.config.schedulerRetryMs,
      maxDelayMs: 5_000,
      cancelled: ctx.stopping,
    });
    if (!ack.accepted)
      ctx.log.info({ jobId: event.jobId, type, reason: ack.reason }, 'scheduler declined a worker event');
  } catch (err) {
    ctx.log.error({ err, jobId: event.jobId, workerId: event.workerId, type }, 'worker event not delivered');
    throw err;
  }
}

/** Asked once; no answer counts as a refusal (the worker's next message asks again). */
export async function reclaimJob(ctx: GatewayContext, request: ReclaimJobRequest): Promise<ReclaimJobReply> {
  try {
    return await call(ctx.nc, ctx.subjects, reclaimJobEndpoint, request);
  } catch (err) {
    const reason = (err as Error).message;
    ctx.notices.note('could not ask the scheduler to hand a build back to its worker', {
      jobId: request.jobId,
      reason,
    });
    return { accepted: false, reason };
  }
}
