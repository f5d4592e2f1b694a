/**
 * Ordered, bounded shutdown. Stages run one after another in the order they were added
 * (stop intake, stop endpoints, drain NATS, close the pool). If the whole sequence outlasts the
 * grace deadline, every stage's `force` runs; after the force deadline `stop()` resolves anyway
 * so the process can exit. `stop()` is idempotent: every call returns the same promise.
 */
import type { Logger } from 'pino';

export interface Stage {
  readonly name: string;
  readonly close: () => Promise<unknown>;
  readonly force?: () => unknown;
}

export interface LifecycleOptions {
  graceMs: number;
  forceMs: number;
  log: Logger;
}

export type StopOutcome = 'clean' | 'forced' | 'abandoned';

export class Lifecycle {
  readonly #stages: Stage[] = [];
  readonly #options: LifecycleOptions;
  #stopping: Promise<StopOutcome> | undefined;
  readonly #done: Promise<StopOutcome>;
  #resolveDone!: (outcome: StopOutcome) => void;
  /** Stage names in the order they finished closing, for operators and tests. */
  readonly history: string[] = [];

  constructor(options: LifecycleOptions) {
    this.#options = options;
    this.#done = new Promise((resolve) => (this.#resolveDone = resolve));
  }

  /** Resolves once stop() has finished, however it was triggered. */
  get stopped(): Promise<StopOutcome> {
    return this.#done;
  }

  get stopping(): boolean {
    return this.#stopping !== undefined;
  }

  add(stage: Stage): void {
    if (this.#stopping) throw new Error(`cannot add stage ${stage.name}: already stopping`);
    this.#stages.push(stage);
  }

  stop(): Promise<StopOutcome> {
    this.#stopping ??= this.#run().then((outcome) => {
      this.#resolveDone(outcome);
      return outcome;
    });
    return this.#stopping;
  }

  async #run(): Promise<StopOutcome> {
    const { graceMs, forceMs, log } = this.#options;
    const orderly = (async () => {
      for (const stage of this.#stages) {
        try {
          await stage.close();
        } catch (err) {
          log.warn({ err, stage: stage.name }, 'shutdown stage failed');
        }
        this.history.push(stage.name);
        log.debug({ stage: stage.name }, 'stopped');
      }
      return 'clean' as const;
    })();
    const outcome = await raceDeadline(orderly, graceMs);
    if (outcome !== 'timeout') return outcome;
    log.warn({ graceMs }, 'grace period over, closing by force');
    const forced = (async () => {
      for (const stage of this.#stages) {
        try {
          await stage.force?.();
        } catch (err) {
          log.warn({ err, stage: stage.name }, 'forced close failed');
        }
      }
      return 'forced' as const;
    })();
    const forcedOutcome = await raceDeadline(forced, forceMs);
    return forcedOutcome === 'timeout' ? 'abandoned' : forcedOutcome;
  }
}

async function raceDeadline<T>(work: Promise<T>, ms: number): Promise<T | 'timeout'> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), ms);
    timer.unref();
  });
  try {
    return await Promise.race([work, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * First SIGINT/SIGTERM starts an orderly stop; a second one exits at once. Returns a function
 * that removes the handlers.
 */
export function onShutdownSignal(stop: () => Promise<unknown>, log: Logger): () => void {
  let count = 0;
  const handler = (signal: NodeJS.Signals) => {
    count += 1;
    if (count > 1) {
      log.warn({ signal }, 'second signal, exiting now');
      process.exit(130);
    }
    log.info({ signal }, 'shutting down');
    void stop().finally(() => {
      process.exitCode ??= 0;
    });
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return () => {
    process.off('SIGINT', handler);
    process.off('SIGTERM', handler);
  };
}

/** How long the fatal record of an uncaught error may take to reach the log before the exit. */
const FATAL_FLUSH_MS = 1_000;

/**
 * What an error nothing caught does (an exception thrown from a callback, or a rejected promise
 * nobody awaited: Node hands those to `uncaughtException` too), installed by every composition
 * root once it has a log. The process exits with code 1, as Node's default does, but the error is
 * first a fatal record in the log, with its stack and where it came from: where an operator
 * reading the JSON log looks, not only as a stack on stderr. Nothing else runs (the state the
 * error left is unknown): the hub's durability does not depend on an orderly stop, a supervisor
 * starts the process again, and the all-in-one's nats-server and MariaDB are stopped by their
 * watchdogs. Only the first error is recorded.
 */
export function exitOnUncaught(log: Logger): void {
  let exiting = false;
  process.on('uncaughtException', (err, origin) => {
    if (exiting) return;
    exiting = true;
    process.exitCode = 1;
    log.fatal({ err, origin }, 'unhandled error: the process exits');
    const timer = setTimeout(() => process.exit(1), FATAL_FLUSH_MS);
    log.flush(() => {
      clearTimeout(timer);
      process.exit(1);
    });
  });
}
