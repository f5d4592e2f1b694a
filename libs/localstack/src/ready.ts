import { setTimeout as sleep } from 'node:timers/promises';
import { LocalStackError, isLocalStackError } from './errors.js';
import type { SupervisedProcess } from './supervise.js';

const POLL_INTERVAL_MS = 50;

export interface ReadyOptions {
  name: string;
  child: SupervisedProcess;
  /** Resolves true when the server answers, else why not (quoted if it never does). */
  probe: () => Promise<true | string>;
  timeoutMs: number;
}

/**
 * Polls until the server answers. A LocalStackError thrown by the probe is final (the server is up
 * but can never become usable). On any failure the child is stopped before the error is thrown,
 * so a failed start leaves nothing running.
 */
export async function waitUntilReady(options: ReadyOptions): Promise<void> {
  const { child, name } = options;
  const exitedEarly = child.exited.then((code) => code);
  const deadline = Date.now() + options.timeoutMs;
  let lastReason = 'no answer yet';
  try {
    for (;;) {
      if (child.hasExited) throw earlyExit(name, await exitedEarly, child.tail());
      const answer = await Promise.race([
        options.probe().catch((err: unknown) => {
          if (isLocalStackError(err)) throw err;
          return err instanceof Error ? err.message : String(err);
        }),
        exitedEarly.then(() => 'exited'),
      ]);
      if (answer === true) return;
      lastReason = answer;
      if (Date.now() > deadline) {
        throw new LocalStackError(
          'NOT_READY',
          `${name} did not answer within ${options.timeoutMs} ms (last probe: ${lastReason}). ` +
            `Last log lines:\n${child.tail()}`,
        );
      }
      await Promise.race([sleep(POLL_INTERVAL_MS), exitedEarly]);
    }
  } catch (err) {
    await child.stop();
    throw err;
  }
}

function earlyExit(name: string, code: number | null, tail: string): LocalStackError {
  return new LocalStackError(
    'EXITED_EARLY',
    `${name} exited (code ${code ?? 'unknown'}) before it was ready. Last log lines:\n${tail}`,
  );
}
