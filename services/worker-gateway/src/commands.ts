/**
 * Commands the scheduler (or an admin route) sends to one worker, on the worker's own subject
 * (`<p>.workers.<workerId>.cmd`), answered in the RpcReply envelope. Only this gateway instance
 * subscribes to it, so a gone worker answers "no responders" at once instead of a timeout.
 *
 * `assign` is answered `accepted` only after `job_assign` reached the socket, and it is
 * idempotent per (job, attempt): a scheduler retrying after a lost reply does not start the
 * build twice.
 */
import type { Msg } from '@nats-io/nats-core';
import { HubError, WorkerCommand, type Ack, type AssignCommand } from '@perry-hub/contracts';
import { decode, respond } from '@perry-hub/runtime';
import type { GatewayContext } from './context.js';
import { cancel, jobAssign, proceedDistribute, skipDistribute } from './wire.js';

/** What a command needs of the worker's session (narrow, so this module does not import it). */
export interface CommandTarget {
  readonly workerId: string;
  readonly conn: { readonly closed: boolean; send(text: string): Promise<boolean> };
  readonly jobs: ReadonlyMap<string, { readonly attempt: number }>;
  requestUpdate(): Promise<boolean>;
  assigned(jobId: string, attempt: number): void;
  unassigned(jobId: string, attempt: number): void;
}

export function handleCommand(ctx: GatewayContext, session: CommandTarget, msg: Msg): Promise<void> {
  return respond(
    msg,
    (body) => run(ctx, session, decode(WorkerCommand, body, 'worker command')),
    ctx.log,
    'worker command',
  );
}

async function run(ctx: GatewayContext, session: CommandTarget, command: WorkerCommand): Promise<Ack> {
  if (session.conn.closed) return { accepted: false, reason: 'worker disconnected' };
  switch (command.kind) {
    case 'assign':
      return assign(ctx, session, command);
    case 'cancel':
      return sent(await session.conn.send(cancel(command.jobId)));
    case 'update_perry':
      return (await session.requestUpdate()) ? { accepted: true } : { accepted: false, reason: 'worker is busy' };
    case 'proceed_distribute':
      return sent(await session.conn.send(proceedDistribute(command.jobId)));
    case 'skip_distribute':
      return sent(await session.conn.send(skipDistribute(command.jobId, command.reason ?? '')));
  }
}

async function assign(ctx: GatewayContext, session: CommandTarget, command: AssignCommand): Promise<Ack> {
  const known = session.jobs.get(command.jobId);
  if (known?.attempt === command.attempt) return { accepted: true };
  let frame: string;
  try {
    frame = jobAssign({
      jobId: command.jobId,
      authToken: command.authToken,
      manifest: command.manifest,
      credentials: ctx.openCredentials(command.credentialsSealed, command.jobId),
      tarballUrl: command.tarballUrl,
      artifactUploadUrl: command.artifactUploadUrl,
    });
  } catch (err) {
    // Never log the error's data: it may hold parts of the credentials.
    ctx.log.error({ jobId: command.jobId, reason: (err as Error).name }, 'credentials could not be opened');
    throw new HubError('INTERNAL_ERROR', 'Credentials could not be opened', { retry: 'never' });
  }
  session.assigned(command.jobId, command.attempt);
  const ok = await session.conn.send(frame);
  if (!ok) {
    session.unassigned(command.jobId, command.attempt);
    return { accepted: false, reason: 'worker disconnected' };
  }
  ctx.log.info({ jobId: command.jobId, attempt: command.attempt, workerId: session.workerId }, 'job assigned');
  return { accepted: true };
}

function sent(ok: boolean): Ack {
  return ok ? { accepted: true } : { accepted: false, reason: 'worker disconnected' };
}
