/** Commands to one connected worker, through the gateway that holds its socket. */
import type { WorkerCommand } from '@perry-hub/contracts';
import { commandWorker } from '@perry-hub/runtime';
import type { Context } from './state.js';

const COMMAND_TIMEOUT_MS = 5_000;

/** True when the gateway wrote the command to the worker's socket. */
export async function sendCommand(ctx: Context, workerId: string, command: WorkerCommand): Promise<boolean> {
  const delivered = await commandWorker(ctx.nc, ctx.subjects, workerId, command, COMMAND_TIMEOUT_MS);
  if (!delivered) ctx.log.debug({ workerId, kind: command.kind }, 'worker command not delivered');
  return delivered;
}
