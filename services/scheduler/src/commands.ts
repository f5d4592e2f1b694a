/** Commands to one connected worker, through the gateway that holds its socket. */
import { RpcReply, type WorkerCommand } from '@perry-hub/contracts';
import { isValid } from '@perry-hub/runtime';
import type { Context } from './state.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** True when the gateway wrote the command to the worker's socket. */
export async function sendCommand(
  ctx: Context,
  workerId: string,
  command: WorkerCommand,
  timeoutMs = 5_000,
): Promise<boolean> {
  try {
    const msg = await ctx.nc.request(ctx.subjects.workerCommand(workerId), encoder.encode(JSON.stringify(command)), {
      timeout: timeoutMs,
    });
    const reply: unknown = JSON.parse(decoder.decode(msg.data));
    if (!isValid(RpcReply, reply) || !reply.ok) return false;
    const result = reply.result as { accepted?: unknown } | undefined;
    return result?.accepted !== false;
  } catch (err) {
    ctx.log.debug({ err, workerId, kind: command.kind }, 'worker command not delivered');
    return false;
  }
}
