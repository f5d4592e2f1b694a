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
  generateSealKey,
  launchService,
  loadConfig,
  onShutdownSignal,
  type BaseConfig,
  type LaunchedService,
  type Logger,
} from '@perry-hub/runtime';
import { CliConfig } from './config.js';
import { planInstances } from './instances.js';
import { startLocalStack, type LocalStack } from './local.js';
import { SERVICES } from './registry.js';

type Env = Readonly<Record<string, string | undefined>>;

export interface Hub {
  readonly services: readonly LaunchedService[];
  /** Lines for the operator (e.g. a secret generated on this start, shown this once). */
  readonly notices: readonly string[];
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly urls: readonly { name: string; url: string }[];
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

export interface StartOptions {
  services: readonly string[];
  env: Env;
  log?: Logger;
}

export async function startHub(options: StartOptions): Promise<Hub> {
  const unknown = options.services.filter((s) => !isServiceName(s));
  if (unknown.length > 0) {
    throw new ConfigError(unknown.map((s) => `unknown service "${s}" (services: ${SERVICE_NAMES.join(', ')})`));
  }
  const allInOne = options.services.length === 0;
  const names = inStartOrder(allInOne ? SERVICE_NAMES : (options.services as ServiceName[]));
  const cli = loadConfig(CliConfig, options.env);
  const baseLevel = options.env['PERRY_HUB_LOG_LEVEL'] || 'info';
  const log = options.log ?? createLogger({ level: baseLevel, name: 'perry-hub' });

  let env: Record<string, string | undefined> = { ...options.env };
  let local: LocalStack | undefined;
  const notices: string[] = [];
  if (allInOne) {
    // Validate before starting anything, so a typo does not cost a MariaDB boot.
    const prefix = parseAll(names, env).get('ingest')?.subjectPrefix ?? DEFAULT_SUBJECT_PREFIX;
    const secrets = localSecrets(cli.dataDir, env);
    env = { ...env, ...secrets.env };
    notices.push(...secrets.notices);
    const startNats = !env['PERRY_HUB_NATS_URL'];
    const startDb = !env['PERRY_DB_HOST'];
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

  // Only with the local stack is the data directory locked to this hub, so that what it recorded
  // there is certainly a previous run of it.
  const plan = local ? planInstances(cli.dataDir, names) : undefined;
  const launched: LaunchedService[] = [];
  const stopAll = async () => {
    for (const service of [...launched].reverse()) await service.stop();
    await local?.stop();
  };
  try {
    const configs = parseAll(names, env);
    for (const name of names) {
      const ids = { instanceId: plan?.ids.get(name), predecessors: plan?.predecessors };
      launched.push(await launchService(SERVICES[name], configs.get(name) as never, log, ids));
    }
  } catch (err) {
    await stopAll();
    throw err;
  }

  const urls = [...(local?.servers ?? [])];
  const ingest = launched.find((s) => s.name === 'ingest');
  const gateway = launched.find((s) => s.name === 'worker-gateway');
  if (ingest) urls.unshift({ name: 'HTTP API', url: `http://127.0.0.1:${String(ingest.info['httpPort'])}` });
  if (gateway) {
    urls.push({ name: 'Workers', url: `ws://127.0.0.1:${String(gateway.info['wsPort'])}` });
    // The CLI derives ws://host:3456/ws from the HTTP origin: serve the gateway there as well.
    const attach = gateway.info['attach'] as ((server: unknown) => () => void) | undefined;
    if (ingest && attach) attach(ingest.info['server']);
  }

  let stopping: Promise<void> | undefined;
  let resolveStopped!: () => void;
  const stopped = new Promise<void>((resolve) => (resolveStopped = resolve));
  return {
    services: launched,
    notices,
    env,
    urls,
    stopped,
    stop: () => {
      stopping ??= stopAll().finally(resolveStopped);
      return stopping;
    },
  };
}

/** The command's body: start, print where things are, stop in order on a signal. */
export async function runStart(services: readonly string[], env: Env, out: NodeJS.WritableStream): Promise<number> {
  const log = createLogger({ level: env['PERRY_HUB_LOG_LEVEL'] || 'info', name: 'perry-hub' });
  let hub: Hub;
  try {
    hub = await startHub({ services, env, log });
  } catch (err) {
    if (err instanceof ConfigError) {
      out.write(`perry-hub: ${err.message}\n`);
      return 2;
    }
    log.fatal({ err }, 'perry-hub failed to start');
    out.write(`perry-hub: failed to start: ${(err as Error).message}\n`);
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
