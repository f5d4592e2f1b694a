import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ChildLog } from './log-tail.js';
import { LocalStackError } from './errors.js';
import type { ChildServer } from './types.js';

/**
 * The watchdog between this process and a server. It exists because a server must not outlive us
 * even when we are SIGKILLed: it holds the read end of a pipe whose only writer is this process, so
 * EOF on it means we are gone, and it then stops the server (SIGTERM, SIGKILL after a grace).
 * SIGTERM sent to the watchdog is forwarded the same way. It records the server's pid and exits
 * with the server's status once it has reaped it, so a watchdog that exited leaves no server.
 *
 * Async lists get /dev/null as stdin, hence the copy of the pipe on fd 3. SIGPIPE is ignored so a
 * server logging into a pipe to a dead parent is not killed mid-shutdown by it.
 */
const WATCHDOG_SCRIPT = `
pid_file=$1
kill_after_s=$2
shift 2
trap '' PIPE
exec 3<&0
"$@" </dev/null 3<&- &
child=$!
echo "$child" > "$pid_file"
stopping=
killer=
terminate() {
  [ -n "$stopping" ] && return
  stopping=1
  kill -TERM "$child" 2>/dev/null
  ( sleep "$kill_after_s"; kill -KILL "$child" 2>/dev/null ) </dev/null >/dev/null 2>&1 &
  killer=$!
}
trap terminate TERM INT HUP
( while read -r line <&3; do :; done; kill -TERM $$ ) </dev/null >/dev/null 2>&1 &
watcher=$!
exec 3<&-
while :; do
  wait "$child"
  status=$?
  kill -0 "$child" 2>/dev/null || break
done
kill "$watcher" 2>/dev/null
[ -n "$killer" ] && kill "$killer" 2>/dev/null
exit "$status"
`;

export interface SuperviseOptions {
  /** For messages. */
  name: string;
  command: string;
  args: readonly string[];
  /** Where the watchdog records the server's pid; replaced on every start. */
  pidFile: string;
  log: ChildLog;
  shutdownTimeoutMs: number;
  /** Variables added to this process's environment for the server. */
  env?: Readonly<Record<string, string>>;
}

/** Extra wait after the watchdog's own SIGKILL should have landed. */
const KILL_MARGIN_MS = 2_000;
const PID_FILE_TIMEOUT_MS = 5_000;

export class SupervisedProcess implements ChildServer {
  readonly pid: number;
  readonly exited: Promise<number | null>;
  private readonly watchdog: ChildProcess;
  private readonly options: SuperviseOptions;
  private exitCode: number | null | undefined;
  private stopping: Promise<void> | undefined;

  private constructor(watchdog: ChildProcess, pid: number, exited: Promise<number | null>, options: SuperviseOptions) {
    this.watchdog = watchdog;
    this.pid = pid;
    this.exited = exited;
    this.options = options;
    void exited.then((code) => {
      this.exitCode = code;
    });
  }

  static async start(options: SuperviseOptions): Promise<SupervisedProcess> {
    rmSync(options.pidFile, { force: true });
    const killAfterS = Math.max(1, Math.ceil(options.shutdownTimeoutMs / 1000));
    // detached: a new session, so a terminal's Ctrl-C reaches only us; we stop servers in order.
    const watchdog = spawn(
      '/bin/sh',
      [
        '-c',
        WATCHDOG_SCRIPT,
        'perry-hub-watchdog',
        options.pidFile,
        String(killAfterS),
        options.command,
        ...options.args,
      ],
      {
        stdio: ['pipe', options.log.stdio, options.log.stdio],
        detached: true,
        ...(options.env ? { env: { ...process.env, ...options.env } } : {}),
      },
    );
    options.log.afterSpawn(watchdog);
    // We never write to the pipe; it exists only to be closed by our death.
    watchdog.stdin?.on('error', () => {});
    const exited = new Promise<number | null>((resolve) => {
      // 'close', not 'exit': by then the piped output is read, so an error can quote all of it.
      watchdog.once('close', (code) => resolve(code));
      watchdog.once('error', () => resolve(null));
    });
    let watchdogDone = false;
    void exited.then(() => {
      watchdogDone = true;
    });
    const deadline = Date.now() + PID_FILE_TIMEOUT_MS;
    for (;;) {
      const pid = readPidFile(options.pidFile);
      if (pid !== undefined) return new SupervisedProcess(watchdog, pid, exited, options);
      if (watchdogDone || Date.now() > deadline) {
        watchdog.kill('SIGKILL');
        throw new LocalStackError(
          'EXITED_EARLY',
          `${options.name} could not be started (watchdog exited). Last log lines:\n${options.log.tail()}`,
        );
      }
      await sleep(10);
    }
  }

  get hasExited(): boolean {
    return this.exitCode !== undefined;
  }

  tail(): string {
    return this.options.log.tail();
  }

  stop(): Promise<void> {
    this.stopping ??= this.doStop();
    return this.stopping;
  }

  private async doStop(): Promise<void> {
    if (!this.hasExited) {
      signal(this.watchdog.pid, 'SIGTERM');
      const inTime = await Promise.race([
        this.exited.then(() => true),
        // Unref'd: a server that stopped in time must not keep the process alive for the deadline.
        sleep(this.options.shutdownTimeoutMs + KILL_MARGIN_MS, undefined, { ref: false }).then(() => false),
      ]);
      if (!inTime) {
        signal(this.pid, 'SIGKILL');
        signal(this.watchdog.pid, 'SIGKILL');
        await this.exited;
      }
    }
    this.watchdog.stdin?.destroy();
    if (readPidFile(this.options.pidFile) === this.pid) rmSync(this.options.pidFile, { force: true });
  }
}

function signal(pid: number | undefined, name: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(pid, name);
  } catch {
    // Already gone.
  }
}

export function readPidFile(path: string): number | undefined {
  try {
    const pid = Number(readFileSync(path, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}
