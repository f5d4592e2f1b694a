/** Commands to one connected worker, through the gateway that holds its socket. */
import type { WorkerCommand } from '@perry-hub/contracts';
import { commandWorker, type Delivery } from '@perry-hub/runtime';
import type { Context } from './state.js';

const COMMAND_TIMEOUT_MS = 5_000;

export type { Delivery } from '@perry-hub/runtime';

export async function deliverCommand(
  ctx: Context,
  workerId: string,
  command: WorkerCommand,
  timeoutMs = COMMAND_TIMEOUT_MS,
): Promise<Delivery> {
  const delivery = await commandWorker(ctx.nc, ctx.subjects, workerId, command, timeoutMs);
  if (delivery !== 'delivered')
    ctx.log.debug({ workerId, kind: command.kind, delivery }, 'worker command not delivered');
  return delivery;
}

/** True when the gateway wrote the command to the worker's socket. */
export async function sendCommand(
  ctx: Context,
  workerId: string,
  command: WorkerCommand,
  timeoutMs = COMMAND_TIMEOUT_MS,
): Promise<boolean> {
  return (await deliverCommand(ctx, workerId, command, timeoutMs)) === 'delivered';
}
