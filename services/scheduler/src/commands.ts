/** Commands to one connected worker, through the gateway that holds its socket. */
import { RequestError } from '@nats-io/nats-core';
import { RpcReply, type WorkerCommand } from '@perry-hub/contracts';
import { isValid } from '@perry-hub/runtime';
import type { Context } from './state.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * `delivered`: the gateway wrote the command to the worker's socket. `refused`: certainly not
 * written (nobody subscribes to the worker's subject, or its gateway said so). `unknown`: no
 * answer in time; the worker may have it.
 */
export type Delivery = 'delivered' | 'refused' | 'unknown';

export async function deliverCommand(
  ctx: Context,
  workerId: string,
  command: WorkerCommand,
  timeoutMs = 5_000,
): Promise<Delivery> {
  try {
    const msg = await ctx.nc.request(ctx.subjects.workerCommand(workerId), encoder.encode(JSON.stringify(command)), {
      timeout: timeoutMs,
    });
    const reply: unknown = JSON.parse(decoder.decode(msg.data));
    if (!isValid(RpcReply, reply) || !reply.ok) return 'refused';
    const result = reply.result as { accepted?: unknown } | undefined;
    return result?.accepted !== false ? 'delivered' : 'refused';
  } catch (err) {
    ctx.log.debug({ err, workerId, kind: command.kind }, 'worker command not delivered');
    return err instanceof RequestError && err.isNoResponders() ? 'refused' : 'unknown';
  }
}

/** True when the gateway wrote the command to the worker's socket. */
export async function sendCommand(
  ctx: Context,
  workerId: string,
  command: WorkerCommand,
  timeoutMs = 5_000,
): Promise<boolean> {
  return (await deliverCommand(ctx, workerId, command, timeoutMs)) === 'delivered';
}
