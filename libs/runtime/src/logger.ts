import { pino, type Logger } from 'pino';

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

export interface LoggerOptions {
  level: string;
  name?: string;
  /** Where records go; default stdout. Tests pass a stream to capture them. */
  destination?: NodeJS.WritableStream;
}

export function createLogger(options: LoggerOptions): Logger {
  return pino(
    {
      level: options.level,
      ...(options.name ? { name: options.name } : {}),
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      base: { pid: process.pid },
    },
    options.destination ?? pino.destination({ dest: 1, sync: false }),
  );
}
