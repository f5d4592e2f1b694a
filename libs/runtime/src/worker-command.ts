/**
 * Commands to one connected worker (`job_assign`, `cancel`, `update_perry`, ...), on the worker's
 * own subject, which only the gateway holding its socket serves. The scheduler and the admin
 * routes both send them through here, so the reply is always validated the same way.
 */
import { Ack, HubError, type Subjects, type WorkerCommand } from '@perry-hub/contracts';
import type { NatsConnection } from '@nats-io/nats-core';
import { requestReply } from './rpc.js';

/**
 * `delivered`: the gateway wrote the command to the worker's socket. `refused`: certainly not
 * written (nobody serves the worker's subject, or its gateway said so). `unknown`: no answer in
 * time; the worker may have it.
 */
export type Delivery = 'delivered' | 'refused' | 'unknown';

export async function commandWorker(
  nc: NatsConnection,
  subjects: Subjects,
  workerId: string,
  command: WorkerCommand,
  timeoutMs: number,
): Promise<Delivery> {
  try {
    const ack = await requestReply(nc, subjects.workerCommand(workerId), command, Ack, {
      timeoutMs,
      what: `worker command ${command.kind}`,
      who: `The gateway of worker ${workerId}`,
    });
    return ack.accepted ? 'delivered' : 'refused';
  } catch (err) {
    return err instanceof HubError && err.code === 'UPSTREAM_TIMEOUT' ? 'unknown' : 'refused';
  }
}
