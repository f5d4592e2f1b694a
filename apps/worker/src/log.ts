/** Logs: JSON lines for journald and collectors, pretty (pino-pretty) on a terminal. */
import { pino, type Logger } from 'pino';
import pretty from 'pino-pretty';

export type { Logger } from 'pino';

export function createWorkerLogger(level: string, tty = process.stdout.isTTY === true): Logger {
  const options = { name: 'perry-hub-worker', level };
  return tty ? pino(options, pretty({ colorize: true, sync: true, ignore: 'pid,hostname' })) : pino(options);
}
