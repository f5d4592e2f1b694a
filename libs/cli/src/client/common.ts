/**
 * What every client command shares: where the hub is and which credential to present (flags,
 * then environment variables, then the local all-in-one's generated admin secret), the exit
 * codes, errors that carry theirs, and how output is chosen (a table or lines for a person on a
 * terminal, JSON for a script, progress bars only on a terminal).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Option, type Command } from 'commander';
import Table from 'cli-table3';

export type Env = Readonly<Record<string, string | undefined>>;

/** Exit codes of the client commands (also in `--help` and the README). */
export const EXIT = {
  ok: 0,
  /** The build failed, was cancelled or expired (submit, and job when asked to wait). */
  failed: 1,
  /** Bad usage: an unknown option, a missing argument, a bad option value, a directory that does not exist. */
  usage: 2,
  /** The hub could not be reached, refused the credential, or answered an error. */
  hub: 3,
  /** An artifact could not be downloaded, or its SHA-256 did not match. */
  download: 4,
} as const;

export const EXIT_CODES_HELP = `Exit codes:
  0  success
  1  the build failed, was cancelled or expired
  2  bad usage or configuration (unknown option, missing argument, bad option value, bad variable)
  3  the hub could not be reached, refused the credential, or answered an error
  4  an artifact could not be downloaded, or its SHA-256 did not match`;

const SERVER_AND_ADMIN_ENV = `Environment:
  PERRY_HUB_SERVER        the hub's HTTP URL (default http://127.0.0.1:3456); --server wins
  PERRY_HUB_ADMIN_SECRET  admin secret for operator commands; --admin-secret wins. When unset
                          and the server is on this machine, the all-in-one's generated one is
                          read from PERRY_HUB_DATA_DIR/secrets.json (default .perry-hub)`;

export const CLIENT_ENV_HELP = `${SERVER_AND_ADMIN_ENV}
  PERRY_LICENSE_KEY       license key to submit with (as perry publish reads it); --license-key wins
  PERRY_HUB_API_TOKEN     account API token (Bearer) to submit with; --api-token wins`;

/** For the commands only the admin may use: no license key or API token to offer. */
export const ADMIN_ENV_HELP = SERVER_AND_ADMIN_ENV;

export class CliError extends Error {
  override readonly name = 'CliError';
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

export interface Io {
  readonly out: NodeJS.WritableStream & { isTTY?: boolean };
  readonly err: NodeJS.WritableStream & { isTTY?: boolean };
  readonly env: Env;
}

export interface ServerOptions {
  server?: string;
  adminSecret?: string;
  licenseKey?: string;
  apiToken?: string;
  json?: boolean;
}

export const DEFAULT_SERVER = 'http://127.0.0.1:3456';

export function serverUrl(options: ServerOptions, env: Env): string {
  const url = (options.server ?? env['PERRY_HUB_SERVER'] ?? DEFAULT_SERVER).replace(/\/+$/, '');
  if (!/^https?:\/\/[^\s/]+/.test(url))
    throw new CliError(`--server must be an http(s) URL (got "${url}")`, EXIT.usage);
  return url;
}

function isLoopback(url: string): boolean {
  const host = new URL(url).hostname.replace(/^\[|\]$/g, '');
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}

/** The admin secret: flag, variable, or (for a hub on this machine) the all-in-one's secrets file. */
export function adminSecret(options: ServerOptions, env: Env, server: string): string {
  const given = options.adminSecret ?? env['PERRY_HUB_ADMIN_SECRET'];
  if (given) return given;
  if (isLoopback(server)) {
    const file = join(resolve(env['PERRY_HUB_DATA_DIR'] || '.perry-hub'), 'secrets.json');
    if (existsSync(file)) {
      try {
        const saved = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
        const secret = saved['PERRY_HUB_ADMIN_SECRET'];
        if (typeof secret === 'string' && secret !== '') return secret;
      } catch {
        // An unreadable file is the same as none: the message below says what to set.
      }
    }
  }
  throw new CliError('an admin secret is needed: set PERRY_HUB_ADMIN_SECRET or pass --admin-secret', EXIT.usage);
}

export function writeJson(io: Io, value: unknown): void {
  io.out.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** A table for a person; plain columns without borders when the output is not a terminal. */
export function table(io: Io, head: string[], rows: (string | number)[][]): void {
  if (rows.length === 0) {
    io.out.write('(none)\n');
    return;
  }
  const tty = io.out.isTTY === true;
  const t = new Table({
    head,
    style: { head: tty ? ['cyan'] : [], border: tty ? ['grey'] : [] },
    ...(tty
      ? {}
      : {
          chars: {
            top: '',
            'top-mid': '',
            'top-left': '',
            'top-right': '',
            bottom: '',
            'bottom-mid': '',
            'bottom-left': '',
            'bottom-right': '',
            left: '',
            'left-mid': '',
            mid: '',
            'mid-mid': '',
            right: '',
            'right-mid': '',
            middle: '  ',
          },
        }),
  });
  t.push(...rows.map((r) => r.map(String)));
  io.out.write(`${t.toString()}\n`);
}

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes;
  let i = -1;
  do {
    v /= 1024;
    i++;
  } while (v >= 1024 && i < units.length - 1);
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

export function formatDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

/** --server and --json, which every client command takes. */
export function clientCommand(parent: Command, name: string, description: string): Command {
  return parent
    .command(name)
    .description(description)
    .addOption(new Option('--server <url>', "the hub's HTTP URL (env PERRY_HUB_SERVER, default http://127.0.0.1:3456)"))
    .option('--json', 'print JSON for scripts instead of text for people');
}
