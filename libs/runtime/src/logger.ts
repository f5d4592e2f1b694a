import { pino, type Logger } from 'pino';
import PinoPretty from 'pino-pretty';

export type { Logger } from 'pino';

/**
 * Paths that may hold secrets anywhere in a log record. Credentials are never logged on purpose;
 * this is the net under that rule.
 */
export const REDACT_PATHS = [
  'credentials',
  '*.credentials',
  'secret',
  '*.secret',
  'password',
  '*.password',
  'authorization',
  '*.authorization',
  'headers.authorization',
  'req.headers.authorization',
  'auth_token',
  '*.auth_token',
  'api_token',
  '*.api_token',
  'license_key',
  '*.license_key',
];

export const LOG_FORMATS = ['auto', 'pretty', 'json'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

export interface LoggerOptions {
  level: string;
  name?: string;
  /** Where records go; default stdout. Tests pass a stream to capture them. */
  destination?: NodeJS.WritableStream;
  /**
   * `auto` (the default): pretty and coloured when stdout is a terminal, JSON lines otherwise
   * (a pipe, a file, a log collector). Ignored when a destination is given: that gets JSON.
   */
  format?: LogFormat;
}

/** True when `level` is one pino knows, so a typo is a configuration problem, not a stack trace. */
export function isLogLevel(level: string): boolean {
  return Object.hasOwn(pino.levels.values, level) || level === 'silent';
}

export function createLogger(options: LoggerOptions): Logger {
  const pretty =
    options.destination === undefined &&
    (options.format === 'pretty' || ((options.format ?? 'auto') === 'auto' && process.stdout.isTTY === true));
  return pino(
    {
      level: options.level,
      ...(options.name ? { name: options.name } : {}),
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      base: { pid: process.pid },
    },
    options.destination ??
      (pretty
        ? // In-process (not a transport thread): nothing is lost when the process exits at once.
          PinoPretty({
            colorize: process.stdout.isTTY === true,
            sync: true,
            ignore: 'pid,hostname,name,service',
            translateTime: 'HH:MM:ss.l',
            // One line a record: a build's story reads top to bottom. The service leads the message.
            singleLine: true,
            messageFormat: '{if service}{service}: {end}{msg}',
            hideObject: false,
          })
        : pino.destination({ dest: 1, sync: false })),
  );
}
