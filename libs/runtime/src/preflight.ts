/**
 * What a process checks before it starts anything, so that a mistake in the environment reads as
 * one sentence naming the variable to change: ports that are already taken, and NATS or MySQL
 * that cannot be reached (reported within seconds, then retried with a visible countdown instead
 * of a silent wait).
 */
import { connect, createServer } from 'node:net';
import type { Logger } from 'pino';
import type { TObject, TProperties } from 'typebox';

export interface PortClaim {
  /** The variable that sets the port, named in the message. */
  readonly variable: string;
  readonly host: string;
  readonly port: number;
}

/** Can this process listen there? Undefined when it can, else the error code (EADDRINUSE, EACCES, ...). */
export function tryListen(host: string, port: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    server.listen({ host, port, exclusive: true }, () => server.close(() => resolve(undefined)));
  });
}

/** One problem per port that cannot be listened on (port 0, "any free port", always can). */
export async function takenPorts(claims: readonly PortClaim[]): Promise<string[]> {
  const problems: string[] = [];
  const seen = new Map<number, string>();
  for (const claim of claims) {
    if (claim.port === 0) continue;
    const twice = seen.get(claim.port);
    if (twice === claim.variable) continue; // the same setting, read by several services
    if (twice !== undefined) {
      problems.push(`${claim.variable} and ${twice} are both ${claim.port}: give each its own port`);
      continue;
    }
    seen.set(claim.port, claim.variable);
    const code = await tryListen(claim.host, claim.port);
    if (code === undefined) continue;
    problems.push(
      code === 'EADDRINUSE'
        ? `port ${claim.port} (${claim.variable}) is already in use on ${claim.host}: stop what uses it, or set ${claim.variable} to a free port`
        : `cannot listen on ${claim.host}:${claim.port} (${claim.variable}): ${code}`,
    );
  }
  return problems;
}

export interface Dependency {
  /** `NATS`, `MySQL` */
  readonly name: string;
  /** The variable(s) that point at it, named in the message. */
  readonly variable: string;
  /** Addresses to try; reachable when any of them answers. */
  readonly addresses: readonly { host: string; port: number; shown: string }[];
}

/** The servers of PERRY_HUB_NATS_URL (comma-separated, default port 4222). */
export function natsDependency(natsUrl: string): Dependency {
  const addresses = natsUrl
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((s) => {
      const url = new URL(/^[a-z]+:\/\//i.test(s) ? s : `nats://${s}`);
      const host = url.hostname.replace(/^\[|\]$/g, '');
      return { host, port: Number(url.port || 4222), shown: `${url.protocol}//${url.host}` };
    });
  return { name: 'NATS', variable: 'PERRY_HUB_NATS_URL', addresses };
}

export function mysqlDependency(host: string, port: number): Dependency {
  return {
    name: 'MySQL',
    variable: 'PERRY_DB_HOST/PERRY_DB_PORT',
    addresses: [{ host, port, shown: `${host}:${port}` }],
  };
}

/** Open a TCP connection and close it: undefined when something answers, else why not. */
export function probe(host: string, port: number, timeoutMs: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (why: string | undefined) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(why);
    };
    const timer = setTimeout(() => done(`no answer in ${Math.round(timeoutMs / 1000)} s`), timeoutMs);
    socket.once('connect', () => done(undefined));
    socket.once('error', (err: NodeJS.ErrnoException) => done(err.code ?? err.message));
  });
}

export interface WaitOptions {
  readonly log: Logger;
  /** Where the countdown goes (stderr); on a terminal it counts down in place. */
  readonly out: NodeJS.WritableStream & { isTTY?: boolean };
  readonly signal?: AbortSignal;
  /** How long one attempt may take (3 s): the first report comes within this. */
  readonly probeTimeoutMs?: number;
  /** Pause between attempts (5 s), counted down on screen. */
  readonly retryAfterMs?: number;
  /** A prefix for the lines written to `out`, e.g. `perry-hub`. */
  readonly who?: string;
}

/**
 * Wait until every dependency answers. The first failed attempt is reported at once with the
 * addresses tried and the variable to change, then retried every few seconds with a countdown.
 * Resolves true when all answer, false when `signal` aborted the wait.
 */
export async function waitUntilReachable(deps: readonly Dependency[], options: WaitOptions): Promise<boolean> {
  const timeoutMs = options.probeTimeoutMs ?? 3_000;
  const retryMs = options.retryAfterMs ?? 5_000;
  const who = options.who ?? 'perry-hub';
  for (const dep of deps) {
    let attempts = 0;
    for (;;) {
      if (options.signal?.aborted) return false;
      const results = await Promise.all(dep.addresses.map((a) => probe(a.host, a.port, timeoutMs)));
      if (results.some((r) => r === undefined)) {
        if (attempts > 0) {
          options.log.info({ dependency: dep.name }, `${dep.name} is reachable`);
          options.out.write(`${who}: ${dep.name} is reachable, starting\n`);
        }
        break;
      }
      attempts++;
      const tried = dep.addresses.map((a, i) => `${a.shown} (${results[i]})`).join(', ');
      options.log.warn(
        { dependency: dep.name, tried: dep.addresses.map((a) => a.shown), attempt: attempts },
        `${dep.name} unreachable`,
      );
      const line = `${who}: ${dep.name} unreachable at ${tried}; check that it runs, or set ${dep.variable}`;
      if (!(await countdown(line, retryMs, options))) return false;
    }
  }
  return true;
}

async function countdown(line: string, ms: number, options: WaitOptions): Promise<boolean> {
  const tty = options.out.isTTY === true;
  if (!tty) options.out.write(`${line}; retrying in ${Math.ceil(ms / 1000)} s\n`);
  for (let left = Math.ceil(ms / 1000); left > 0; left--) {
    if (tty) options.out.write(`\r\x1b[2K${line}; retrying in ${left} s`);
    const aborted = await sleep(1_000, options.signal);
    if (aborted) {
      if (tty) options.out.write('\n');
      return false;
    }
  }
  if (tty) options.out.write(`\r\x1b[2K${line}; retrying now\n`);
  return true;
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve(true);
    const onAbort = () => {
      clearTimeout(timer);
      resolve(true);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve(false);
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * The ports services listen on, by variable, with the variable of their bind address. A new
 * listening port belongs here, so it is checked before anything starts.
 */
export const LISTEN_PORTS: Readonly<Record<string, string>> = {
  PERRY_HUB_HTTP_PORT: 'PERRY_HUB_HTTP_HOST',
  PERRY_HUB_WS_PORT: 'PERRY_HUB_WS_HOST',
  PERRY_HUB_METRICS_PORT: 'PERRY_HUB_METRICS_HOST',
};

/** The listening ports a parsed config asks for (see LISTEN_PORTS). */
export function listenClaims(schema: TObject, config: object): PortClaim[] {
  const byEnv = new Map<string, unknown>();
  for (const [key, field] of Object.entries(schema.properties as TProperties)) {
    const env = (field as { env?: unknown }).env;
    if (typeof env === 'string') byEnv.set(env, (config as Record<string, unknown>)[key]);
  }
  return Object.entries(LISTEN_PORTS).flatMap(([portVar, hostVar]) => {
    const port = byEnv.get(portVar);
    if (typeof port !== 'number') return [];
    const host = byEnv.get(hostVar);
    return [{ variable: portVar, host: typeof host === 'string' ? host : '0.0.0.0', port }];
  });
}

/** NATS, and MySQL when the config has a database. */
export function dependenciesOf(config: object): Dependency[] {
  const c = config as { natsUrl?: unknown; dbHost?: unknown; dbPort?: unknown };
  const deps: Dependency[] = [];
  if (typeof c.natsUrl === 'string') deps.push(natsDependency(c.natsUrl));
  if (typeof c.dbHost === 'string' && typeof c.dbPort === 'number') deps.push(mysqlDependency(c.dbHost, c.dbPort));
  return deps;
}
