/**
 * Commands to one connected worker (`job_assign`, `cancel`, `update_perry`, ...), on the worker's
 * own subject, which only the gateway holding its socket serves. The scheduler and the admin
 * routes both send them through here, so the reply is always validated the same way.
 */
import { Ack, type Subjects, type WorkerCommand } from '@perry-hub/contracts';
import type { NatsConnection } from '@nats-io/nats-core';
import { requestReply } from './rpc.js';

/**
 * True only when the worker's gateway answered that the command reached the socket; false when
 * the worker is gone, its gateway did not answer in time, or it refused (busy, disconnected).
 */
export async function commandWorker(
  nc: NatsConnection,
  subjects: Subjects,
  workerId: string,
  command: WorkerCommand,
  timeoutMs: number,
): Promise<boolean> {
  try {
    const ack = await requestReply(nc, subjects.workerCommand(workerId), command, Ack, {
      timeoutMs,
      what: `worker command ${command.kind}`,
      who: `The gateway of worker ${workerId}`,
    });
    return ack.accepted;
  } catch {
    return false;
  }
}
