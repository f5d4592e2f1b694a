/**
 * `perry-hub start [service...]`: with no service, the all-in-one (all six in one process, plus
 * a local nats-server and MariaDB for whatever the environment does not configure); with names,
 * just those services against the configured NATS and MySQL.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { DEFAULT_SUBJECT_PREFIX, isServiceName, SERVICE_NAMES, type ServiceName } from '@perry-hub/contracts';
import {
  ConfigError,
  createLogger,
  exitOnUncaught,
  dependenciesOf,
  generateSealKey,
  isLogLevel,
  launchService,
  listenClaims,
  loadConfig,
  LOG_FORMATS,
  onShutdownSignal,
  ProcessOps,
  serveOps,
  takenPorts,
  waitUntilReachable,
  type BaseConfig,
  type Dependency,
  type LaunchedService,
  type Logger,
  type LogFormat,
  type PortClaim,
} from '@perry-hub/runtime';
import { CliConfig } from './config.js';
import { planInstances } from './instances.js';
import { startLocalStack, type LocalStack } from './local.js';
import { SERVICES } from './registry.js';
import { syncLocalToolUsers } from './tool-users.js';
import { ensureLocalTool, LOCAL_TOOL_NAME } from './local-tool.js';

type Env = Readonly<Record<string, string | undefined>>;

export interface Hub {
  readonly services: readonly LaunchedService[];
  /** Lines for the operator (e.g. a secret generated on this start, shown this once). */
  readonly notices: readonly string[];
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly urls: readonly { name: string; url: string }[];
  /** Metrics and readiness of every service in this process (/metrics, /readyz). */
  readonly ops: ProcessOps;
  stop(): Promise<void>;
  readonly stopped: Promise<void>;
}

/** Parse every service's config from one environment and report all problems together. */
function parseAll(names: readonly ServiceName[], env: Env): Map<ServiceName, BaseConfig & Record<string, unknown>> {
  const configs = new Map<ServiceName, BaseConfig & Record<string, unknown>>();
  const problems = new Set<string>();
  for (const name of names) {
    try {
      configs.set(name, loadConfig(SERVICES[name].config, env) as unknown as BaseConfig & Record<string, unknown>);
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      for (const p of err.problems) problems.add(p);
    }
  }
  if (problems.size > 0) throw new ConfigError([...problems]);
  return configs;
}

/**
 * A worker downloads its build's tarball from the ingest the moment it is assigned one: the
 * gateway, which lets workers in (they reconnect at once after a restart), starts after the ingest.
 */
const START_ORDER: readonly ServiceName[] = [
  'license',
  'artifact-store',
  'scheduler',
  'ingest',
  'worker-gateway',
  'vm-controller',
];

function inStartOrder(names: readonly ServiceName[]): ServiceName[] {
  return [...names].sort((a, b) => START_ORDER.indexOf(a) - START_ORDER.indexOf(b));
}

const SECRETS_FILE = 'secrets.json';

/** Generated secrets the operator needs (to call admin routes, to configure workers), by label. */
const SHOWN: Readonly<Record<string, string>> = {
  PERRY_HUB_ADMIN_SECRET: 'Admin secret',
  PERRY_HUB_WORKER_SECRET: 'Worker secret for PERRY_HUB_WORKER_SECRET',
};

/**
 * The all-in-one works without configuration, and not open: a missing admin secret, worker
 * secret or credentials key is generated once and kept in the data directory (mode 0600), so
 * queued jobs' sealed credentials still open after a restart and no client can register as a
 * worker (and receive signing credentials) without the worker secret. The admin and worker
 * secrets are printed only when they are generated, never logged.
 */
function localSecrets(dataDir: string, env: Env): { env: Record<string, string>; notices: string[] } {
  const wanted = ['PERRY_HUB_ADMIN_SECRET', 'PERRY_HUB_WORKER_SECRET', 'PERRY_HUB_CREDENTIALS_KEY'].filter(
    (name) => !env[name],
  );
  if (wanted.length === 0) return { env: {}, notices: [] };
  const file = join(resolve(dataDir), SECRETS_FILE);
  const saved: Record<string, string> = existsSync(file)
    ? (JSON.parse(readFileSync(file, 'utf8')) as Record<string, string>)
    : {};
  const notices: string[] = [];
  let changed = false;
  for (const name of wanted) {
    if (saved[name]) continue;
    saved[name] = name === 'PERRY_HUB_CREDENTIALS_KEY' ? generateSealKey() : randomBytes(32).toString('base64url');
    changed = true;
    const label = SHOWN[name];
    if (label) notices.push(`  ${label} (generated, kept in ${file}): ${saved[name]}`);
  }
  if (changed) {
    mkdirSync(resolve(dataDir), { recursive: true });
    writeFileSync(file, `${JSON.stringify(saved, null, 2)}\n`, { mode: 0o600 });
    chmodSync(file, 0o600);
  }
  return { env: Object.fromEntries(wanted.map((name) => [name, saved[name]!])), notices };
}

function checkKeptSecrets(names: readonly ServiceName[], env: Env, kept: readonly string[], file: string): void {
  if (kept.length === 0) return;
  try {
    parseAll(names, env);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    const fromFile = (p: string) => kept.some((name) => p.startsWith(`${name} `));
    throw new ConfigError(err.problems.map((p) => (fromFile(p) ? `${p}, as kept in ${file}` : p)));
  }
}

export interface StartOptions {
  services: readonly string[];
  env: Env;
  log?: Logger;
  /** Where a wait for NATS or MySQL counts down (default stderr). */
  progress?: NodeJS.WritableStream & { isTTY?: boolean };
  /** Aborts a wait for NATS or MySQL (Ctrl-C before the hub is up). */
  signal?: AbortSignal;
}

/** Ctrl-C while the hub was still waiting for NATS or MySQL. */
export class StartAborted extends Error {
  override readonly name = 'StartAborted';
  readonly code = 'START_ABORTED';
}

/** Every problem of the command's own settings and of every service's, in one report. */
function validate(names: readonly ServiceName[], env: Env) {
  const problems = new Set<string>();
  let cli: ReturnType<typeof loadConfig<typeof CliConfig>> | undefined;
  let configs: ReturnType<typeof parseAll> | undefined;
  try {
    cli = loadConfig(CliConfig, env);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    for (const p of err.problems) problems.add(p);
  }
  try {
    configs = parseAll(names, env);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    for (const p of err.problems) problems.add(p);
  }
  if (!cli || !configs) throw new ConfigError([...problems]);
  return { cli, configs };
}

/** Every port this start would listen on, local servers included, by the variable that sets it. */
function portClaims(
  names: readonly ServiceName[],
  configs: ReturnType<typeof parseAll>,
  local: { nats?: number; db?: number },
): PortClaim[] {
  const claims = names.flatMap((name) => listenClaims(SERVICES[name].config, configs.get(name)!));
  if (local.nats !== undefined)
    claims.push({ variable: 'PERRY_HUB_LOCAL_NATS_PORT', host: '127.0.0.1', port: local.nats });
  if (local.db !== undefined) claims.push({ variable: 'PERRY_HUB_LOCAL_DB_PORT', host: '127.0.0.1', port: local.db });
  return claims;
}

export async function startHub(options: StartOptions): Promise<Hub> {
  const unknown = options.services.filter((s) => !isServiceName(s));
  if (unknown.length > 0) {
    throw new ConfigError(unknown.map((s) => `unknown service "${s}" (services: ${SERVICE_NAMES.join(', ')})`));
  }
  const allInOne = options.services.length === 0;
  const names = inStartOrder(allInOne ? SERVICE_NAMES : (options.services as ServiceName[]));
  // Validate before starting anything, so a typo does not cost a MariaDB boot.
  const { cli, configs: parsed } = validate(names, options.env);
  const startNats = allInOne && !options.env['PERRY_HUB_NATS_URL'];
  const startDb = allInOne && !options.env['PERRY_DB_HOST'];
  const taken = await takenPorts(
    portClaims(names, parsed, {
      ...(startNats ? { nats: cli.localNatsPort } : {}),
      ...(startDb ? { db: cli.localDbPort } : {}),
    }),
  );
  if (taken.length > 0) throw new ConfigError(taken);
  const log =
    options.log ?? createLogger({ level: levelOf(options.env), format: formatOf(options.env), name: 'perry-hub' });

  let env: Record<string, string | undefined> = { ...options.env };
  let local: LocalStack | undefined;
  const notices: string[] = [];
  if (allInOne) {
    const prefix = parsed.get('ingest')?.subjectPrefix ?? DEFAULT_SUBJECT_PREFIX;
    const secrets = localSecrets(cli.dataDir, env);
    env = { ...env, ...secrets.env };
    notices.push(...secrets.notices);
    // A value kept in the data directory (edited by hand, say) is judged before anything starts too.
    checkKeptSecrets(names, env, Object.keys(secrets.env), join(resolve(cli.dataDir), SECRETS_FILE));
    if (startNats || startDb) {
      local = await startLocalStack({
        dataDir: cli.dataDir,
        natsPort: cli.localNatsPort,
        natsMonitorPort: cli.localNatsMonitorPort,
        dbPort: cli.localDbPort,
        startNats,
        startDb,
        subjectPrefix: prefix,
        log,
      });
      env = { ...env, ...local.env };
      if (!env['PERRY_HUB_PUBLIC_URL']) {
        env['PERRY_HUB_PUBLIC_URL'] = `http://127.0.0.1:${env['PERRY_HUB_HTTP_PORT'] || '3456'}`;
      }
    }
  }

  // What this process did not start itself must answer before the services connect to it.
  const remote = new Map<string, Dependency>();
  for (const name of names) {
    const config = parsed.get(name)!;
    for (const dep of dependenciesOf(SERVICES[name].needsDb ? config : { natsUrl: config.natsUrl })) {
      if ((dep.name === 'NATS' && !startNats) || (dep.name === 'MySQL' && !startDb)) remote.set(dep.name, dep);
    }
  }
  const reachable = await waitUntilReachable([...remote.values()], {
    log,
    out: options.progress ?? process.stderr,
    ...(options.signal ? { signal: options.signal } : {}),
  });
  if (!reachable) {
    await local?.stop();
    throw new StartAborted('stopped before the hub started');
  }

  // Only with the local stack is the data directory locked to this hub, so that what it recorded
  // there is certainly a previous run of it.
  const plan = local ? planInstances(cli.dataDir, names) : undefined;
  const launched: LaunchedService[] = [];
  // One registry and one set of readiness checks for the whole process: the ingest serves them on
  // its HTTP port; without an ingest, PERRY_HUB_METRICS_PORT does.
  let opsServer: { port: number; close(): Promise<void> } | undefined;
  const stopAll = async () => {
    for (const service of [...launched].reverse()) await service.stop();
    await opsServer?.close();
    await local?.stop();
  };
  let configs: ReturnType<typeof parseAll>;
  try {
    configs = parseAll(names, env);
  } catch (err) {
    await stopAll();
    throw err;
  }
  const first = configs.get(names[0]!) as unknown as
    { metricsPort: number; metricsHost: string; eventLoopSampleMs: number } | undefined;
  const ops = new ProcessOps(first ? { eventLoopSampleMs: first.eventLoopSampleMs } : {});
  try {
    if (first && first.metricsPort > 0) opsServer = await serveOps(ops, first.metricsPort, first.metricsHost);
    for (const name of names) {
      if (options.signal?.aborted) throw new StartAborted('stopped before the hub started');
      const ids = {
        instanceId: plan?.ids.get(name),
        predecessors: plan?.predecessors,
        ops,
        ...(options.signal ? { signal: options.signal } : {}),
      };
      launched.push(await launchService(SERVICES[name], configs.get(name) as never, log, ids));
    }
  } catch (err) {
    await stopAll();
    throw options.signal?.aborted ? new StartAborted('stopped before the hub started', { cause: err }) : err;
  }

  const urls = [...(local?.servers ?? [])];
  const ingest = launched.find((s) => s.name === 'ingest');
  const gateway = launched.find((s) => s.name === 'worker-gateway');
  if (ingest) {
    const http = `http://127.0.0.1:${String(ingest.info['httpPort'])}`;
    urls.unshift({ name: 'HTTP API', url: http }, { name: 'Dashboard', url: `${http}/ui/` });
  }
  if (opsServer) urls.push({ name: 'Metrics', url: `http://127.0.0.1:${opsServer.port}/metrics` });
  if (gateway) {
    urls.push({ name: 'Workers', url: `ws://127.0.0.1:${String(gateway.info['wsPort'])}` });
    // The CLI derives ws://host:3456/ws from the HTTP origin: serve the gateway there as well.
    const attach = gateway.info['attach'] as ((server: unknown) => () => void) | undefined;
    if (ingest && attach) attach(ingest.info['server']);
  }

  // The local nats-server was started with the service users only: give it the tool users too,
  // the local tool (registered here when it is missing) among them.
  if (startNats && ingest && env['PERRY_HUB_ADMIN_SECRET']) {
    await syncToolsOnStart(
      cli.dataDir,
      parsed.get('ingest')?.subjectPrefix ?? DEFAULT_SUBJECT_PREFIX,
      `http://127.0.0.1:${String(ingest.info['httpPort'])}`,
      env['PERRY_HUB_ADMIN_SECRET'],
      log,
    );
  }

  let stopping: Promise<void> | undefined;
  let resolveStopped!: () => void;
  const stopped = new Promise<void>((resolve) => (resolveStopped = resolve));
  return {
    services: launched,
    notices,
    env,
    urls,
    ops,
    stopped,
    stop: () => {
      stopping ??= stopAll().finally(resolveStopped);
      return stopping;
    },
  };
}

async function syncToolsOnStart(dataDir: string, prefix: string, url: string, secret: string, log: Logger) {
  try {
    const { tools, created } = await ensureLocalTool(dataDir, url, secret);
    if (created) log.info({ tool: LOCAL_TOOL_NAME }, 'local tool identity registered');
    const result = syncLocalToolUsers(dataDir, prefix, tools);
    if (!result.synced) log.warn({ why: result.why }, 'tool identities not given to the local nats-server');
    else if (result.reloaded) log.info({ tools: tools.length }, 'tool identities given to the local nats-server');
  } catch (err) {
    log.warn({ err }, 'tool identities not given to the local nats-server');
  }
}

function levelOf(env: Env): string {
  const level = env['PERRY_HUB_LOG_LEVEL'] || 'info';
  return isLogLevel(level) ? level : 'info';
}

function formatOf(env: Env): LogFormat {
  const format = env['PERRY_HUB_LOG_FORMAT'] || 'auto';
  return (LOG_FORMATS as readonly string[]).includes(format) ? (format as LogFormat) : 'auto';
}

/** The command's body: start, print where things are, stop in order on a signal. */
export async function runStart(
  services: readonly string[],
  env: Env,
  out: NodeJS.WritableStream,
  err: NodeJS.WritableStream & { isTTY?: boolean } = process.stderr,
): Promise<number> {
  // A bad level or format is reported with every other problem by startHub; log meanwhile at info.
  const log = createLogger({ level: levelOf(env), format: formatOf(env), name: 'perry-hub' });
  exitOnUncaught(log);
  const early = new AbortController();
  const abort = () => early.abort();
  process.once('SIGINT', abort).once('SIGTERM', abort);
  let hub: Hub;
  try {
    hub = await startHub({ services, env, log, progress: err, signal: early.signal });
  } catch (e) {
    if (e instanceof ConfigError) {
      err.write(`perry-hub: ${e.message}\n`);
      return 2;
    }
    if (e instanceof StartAborted) {
      err.write(`perry-hub: ${e.message}\n`);
      return 1;
    }
    log.fatal({ err: e }, 'perry-hub failed to start');
    err.write(`perry-hub: failed to start: ${(e as Error).message}\n`);
    return 1;
  } finally {
    process.off('SIGINT', abort).off('SIGTERM', abort);
  }
  if (early.signal.aborted) {
    // Asked to stop just as the last service came up.
    await hub.stop();
    err.write('perry-hub: stopped before the hub started\n');
    return 1;
  }
  const lines = [
    `Perry Hub is up (${hub.services.map((s) => s.name).join(', ')}).`,
    ...hub.urls.map((u) => `  ${u.name.padEnd(9)} ${u.url}`),
    ...hub.notices,
    '  Press Ctrl-C to stop.',
  ];
  out.write(`${lines.join('\n')}\n`);
  onShutdownSignal(() => hub.stop(), log);
  await hub.stopped;
  out.write('Perry Hub stopped.\n');
  return 0;
}
