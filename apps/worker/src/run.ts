/**
 * One build command: `sh -c <command>` (under the configured wrapper) in its own process group,
 * so that a cancel or a timeout reaches every process it started: SIGTERM to the group, SIGKILL
 * after the grace. Output is split into lines; `::stage <name> [message]` and
 * `::progress <percent> [message]` lines are reports to the hub, every other line is a log line.
 * When the command ends, whatever it left running in its group is killed too.
 */
import { spawn } from 'node:child_process';
import { StringDecoder } from 'node:string_decoder';
import { isStage, type StageName } from './wire.js';

export type OutputEvent =
  | { kind: 'log'; line: string; stream: 'stdout' | 'stderr' }
  | { kind: 'stage'; stage: StageName; message: string }
  | { kind: 'progress'; percent: number; message: string | null };

export interface RunOptions {
  command: string;
  cwd: string;
  env: NodeJS.ProcessEnv;
  wrapper: readonly string[];
  /** Another user's ids to run as (the worker is root). */
  runAs?: { uid: number; gid: number } | undefined;
  killGraceMs: number;
  /** Stop the command (cancel, timeout): the reason is returned as the outcome. */
  signal: AbortSignal;
  onOutput: (event: OutputEvent) => void;
  /** Called with the group's pid as soon as it started (tests check no process outlives it). */
  onStart?: (pid: number) => void;
}

export type RunOutcome =
  | { kind: 'exited'; code: number | null; signal: NodeJS.Signals | null }
  | { kind: 'stopped'; reason: unknown }
  | { kind: 'failed-to-start'; error: Error };

/** Longest line relayed as one `log` message; longer ones are cut (the hub rate-limits bytes). */
export const MAX_LINE_CHARS = 4_000;

export function parseLine(line: string, stream: 'stdout' | 'stderr'): OutputEvent {
  const stage = /^::stage\s+([a-z_]+)(?:\s+(.*))?$/.exec(line);
  if (stage && isStage(stage[1]!)) return { kind: 'stage', stage: stage[1] as StageName, message: stage[2] ?? '' };
  const progress = /^::progress\s+(\d{1,3})(?:\s+(.*))?$/.exec(line);
  if (progress && Number(progress[1]) <= 100) {
    return { kind: 'progress', percent: Number(progress[1]), message: progress[2] ?? null };
  }
  return { kind: 'log', line: line.length > MAX_LINE_CHARS ? `${line.slice(0, MAX_LINE_CHARS)}…` : line, stream };
}

function killGroup(pid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(-pid, signal);
    return true;
  } catch {
    return false; // the group is gone
  }
}

function groupAlive(pid: number): boolean {
  return killGroup(pid, 0 as unknown as NodeJS.Signals);
}

export function runCommand(o: RunOptions): Promise<RunOutcome> {
  return new Promise((resolve) => {
    const [file, ...args] = [...o.wrapper, '/bin/sh', '-c', o.command];
    const child = spawn(file!, args, {
      cwd: o.cwd,
      env: o.env,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(o.runAs ? { uid: o.runAs.uid, gid: o.runAs.gid } : {}),
    });
    let stopped: { reason: unknown } | undefined;
    let killTimer: NodeJS.Timeout | undefined;
    const pid = child.pid;
    const reader = (stream: 'stdout' | 'stderr') => {
      const decoder = new StringDecoder('utf8');
      let partial = '';
      const emit = (text: string, end: boolean) => {
        partial += text;
        const lines = partial.split(/\r?\n/);
        partial = end ? '' : lines.pop()!;
        for (const line of end && lines.at(-1) === '' ? lines.slice(0, -1) : lines) o.onOutput(parseLine(line, stream));
      };
      return {
        data: (chunk: Buffer) => emit(decoder.write(chunk), false),
        end: () => emit(decoder.end(), true),
      };
    };
    const out = reader('stdout');
    const err = reader('stderr');
    child.stdout!.on('data', out.data);
    child.stderr!.on('data', err.data);
    let ended = 0;
    let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
    const finish = () => {
      if (ended < 2 || !exit) return;
      clearTimeout(killTimer);
      o.signal.removeEventListener('abort', onAbort);
      // Whatever the command left behind in its group goes with it.
      if (pid !== undefined && groupAlive(pid)) killGroup(pid, 'SIGKILL');
      resolve(stopped ? { kind: 'stopped', reason: stopped.reason } : { kind: 'exited', ...exit });
    };
    // The pipes close when the last process holding them ends: a child that keeps them open
    // past the command's exit is killed with the group below, which closes them.
    child.stdout!.on('close', () => (out.end(), ended++, finish()));
    child.stderr!.on('close', () => (err.end(), ended++, finish()));
    child.on('error', (error) => {
      clearTimeout(killTimer);
      o.signal.removeEventListener('abort', onAbort);
      resolve({ kind: 'failed-to-start', error });
    });
    child.on('exit', (code, signal) => {
      exit = { code, signal };
      // The leader is gone; anything left in the group must not hold the pipes (and the job) open.
      // While stopping, the rest of the group keeps its grace (the timer kills it).
      if (!stopped && pid !== undefined && groupAlive(pid)) killGroup(pid, 'SIGKILL');
      finish();
    });
    const onAbort = () => {
      if (pid === undefined || stopped) return;
      stopped = { reason: o.signal.reason };
      killGroup(pid, 'SIGTERM');
      killTimer = setTimeout(() => killGroup(pid, 'SIGKILL'), o.killGraceMs);
    };
    if (pid !== undefined) o.onStart?.(pid);
    if (o.signal.aborted) onAbort();
    else o.signal.addEventListener('abort', onAbort);
  });
}
