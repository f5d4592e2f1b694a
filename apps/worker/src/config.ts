/**
 * The worker's configuration: environment variables (the Rust workers' names where they have
 * one: PERRY_HUB_URL, PERRY_HUB_WORKER_SECRET, PERRY_WORKER_NAME, PERRY_MAX_CONCURRENT_BUILDS,
 * PERRY_BUILD_PERRY_BINARY), over an optional JSON file (PERRY_WORKER_CONFIG or --config) for
 * what is awkward in a variable: per-target commands and artifact patterns. Every problem is
 * reported at once, before anything connects.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import {
  CLIENT_TARGETS,
  SIGN_TARGETS,
  WORKER_MAX_SLOTS,
  WORKER_NAME_MAX_CHARS,
  WORKER_NAME_PATTERN,
} from '@perry-hub/contracts';

type Env = Readonly<Record<string, string | undefined>>;

/** How one target is built. Commands run with `sh -c` in the project directory. */
export interface TargetConfig {
  /** The build (always run; the only command of a `build_type: "plugin"` job). */
  readonly compile: string;
  /** Packaging after the compile (skipped for plugins); none by default. */
  readonly package: string | undefined;
  /** Globs, relative to $PERRY_OUTPUT_DIR, of the files to upload. */
  readonly artifacts: readonly string[];
  /** Sent as `needs_finishing` on success (e.g. "ios" for a cross-compile a sign worker finishes). */
  readonly needsFinishing: string | null;
}

export interface WorkerConfig {
  readonly hubUrl: string;
  readonly secret: string | undefined;
  readonly name: string;
  readonly capabilities: readonly string[];
  readonly maxConcurrent: number;
  readonly perryBinary: string;
  readonly workDir: string;
  /** Per target, falling back to `defaultTarget`. */
  readonly targets: Readonly<Record<string, TargetConfig>>;
  readonly defaultTarget: TargetConfig;
  readonly jobTimeoutSecs: number;
  readonly killGraceMs: number;
  readonly maxTarballBytes: number;
  readonly maxExtractedBytes: number;
  readonly maxEntries: number;
  /** argv prefix the shell runs under (a container or VM runner, ...). */
  readonly wrapper: readonly string[];
  /** Run build commands as this user (the worker runs as root); the job directory is theirs. */
  readonly runAs: { readonly user: string; readonly uid: number; readonly gid: number } | undefined;
  readonly updateCommand: string | undefined;
  readonly pingIntervalMs: number;
  readonly staleTimeoutMs: number;
  readonly reconnectMinMs: number;
  readonly reconnectMaxMs: number;
  readonly holdResultSecs: number;
  readonly logLevel: string;
}

/** The default build: the Perry compiler, one target at a time, into the job's output directory. */
export const DEFAULT_COMPILE =
  '"$PERRY_BIN" compile "$PERRY_ENTRY" --target "$PERRY_TARGET" -o "$PERRY_OUTPUT_DIR/$PERRY_APP_NAME"';

/** Every variable the worker reads, with its default, for --help and the README. */
export const VARIABLES: readonly (readonly [string, string, string])[] = [
  ['PERRY_HUB_URL', 'ws://localhost:3457', "The hub's WebSocket (the gateway's port, or wss://host/ws)"],
  ['PERRY_HUB_WORKER_SECRET', '(none)', "The hub's PERRY_HUB_WORKER_SECRET"],
  ['PERRY_WORKER_NAME', '(host name)', 'Name shown by the hub'],
  ['PERRY_WORKER_CAPABILITIES', 'linux', 'Comma-separated targets this machine builds'],
  ['PERRY_MAX_CONCURRENT_BUILDS', '1', 'Builds at a time'],
  ['PERRY_BUILD_PERRY_BINARY', 'perry', 'The Perry compiler ($PERRY_BIN in commands)'],
  ['PERRY_WORKER_CONFIG', '(none)', 'JSON file with per-target commands and artifacts (see README)'],
  ['PERRY_WORKER_COMMAND', 'perry compile ...', 'Build command for every target (sh -c, in the project directory)'],
  ['PERRY_WORKER_COMMAND_<TARGET>', '(none)', 'Build command for one target, e.g. PERRY_WORKER_COMMAND_ANDROID'],
  ['PERRY_WORKER_PACKAGE_COMMAND[_<TARGET>]', '(none)', 'Packaging command after the build (not for plugins)'],
  ['PERRY_WORKER_ARTIFACTS', '**', 'Comma-separated globs under $PERRY_OUTPUT_DIR to upload'],
  ['PERRY_WORKER_WORK_DIR', '<tmp>/perry-hub-worker', 'Where per-job directories are made'],
  ['PERRY_WORKER_JOB_TIMEOUT_SECS', '3600', 'A build running longer is stopped and reported failed'],
  ['PERRY_WORKER_KILL_GRACE_MS', '10000', 'Between SIGTERM and SIGKILL of a cancelled build'],
  ['PERRY_WORKER_MAX_TARBALL_BYTES', '536870912', 'Largest project tarball downloaded'],
  ['PERRY_WORKER_MAX_EXTRACTED_BYTES', '2147483648', 'Largest unpacked project'],
  ['PERRY_WORKER_MAX_ENTRIES', '100000', 'Most entries in a project tarball'],
  ['PERRY_WORKER_WRAPPER', '(none)', 'Command prefix the build runs under (JSON array or words)'],
  ['PERRY_WORKER_RUN_AS_USER', '(none)', 'Run builds as this user (the worker must run as root)'],
  ['PERRY_WORKER_UPDATE_COMMAND', '(none)', 'Run on update_perry; without it updates are declined'],
  ['PERRY_WORKER_PING_INTERVAL_MS', '30000', 'WebSocket ping interval'],
  ['PERRY_WORKER_STALE_TIMEOUT_MS', '90000', 'Reconnect after hearing nothing this long'],
  ['PERRY_WORKER_RECONNECT_MIN_MS', '1000', 'First reconnect delay (doubles, with jitter)'],
  ['PERRY_WORKER_RECONNECT_MAX_MS', '60000', 'Longest reconnect delay'],
  ['PERRY_WORKER_HOLD_RESULT_SECS', '900', 'How long a result finished while disconnected waits for the hub'],
  ['PERRY_WORKER_LOG_LEVEL', 'info', 'trace, debug, info, warn, error'],
];

/** The README's table of worker variables (a test keeps the README current). */
export function variablesTable(): string {
  const rows = VARIABLES.map(([k, d, what]) => `| \`${k}\` | \`${d}\` | ${what.replace(/\|/g, '\\|')} |`);
  return ['| Variable | Default | What it does |', '|---|---|---|', ...rows].join('\n');
}

export class WorkerConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`invalid worker configuration:\n  - ${problems.join('\n  - ')}`);
  }
}

const KNOWN_CAPABILITIES: readonly string[] = [...CLIENT_TARGETS, ...SIGN_TARGETS];
const FILE_KEYS = new Set([
  'capabilities',
  'max_concurrent',
  'command',
  'package_command',
  'artifacts',
  'wrapper',
  'job_timeout_secs',
  'targets',
]);
const TARGET_KEYS = new Set(['command', 'package_command', 'artifacts', 'needs_finishing']);

/** Host names may hold characters the hub refuses in a worker name. */
export function defaultName(host = hostname()): string {
  const name = host.replace(/[^A-Za-z0-9._-]/g, '-').replace(/^[^A-Za-z0-9]+/, '');
  return (name || 'perry-worker').slice(0, WORKER_NAME_MAX_CHARS);
}

const envKey = (target: string) => target.toUpperCase().replace(/[^A-Z0-9]/g, '_');
const list = (s: string) =>
  s
    .split(',')
    .map((x) => x.trim())
    .filter((x) => x !== '');

export function loadWorkerConfig(env: Env, configFile?: string): WorkerConfig {
  const problems: string[] = [];
  const file = readConfigFile(configFile ?? env['PERRY_WORKER_CONFIG'], problems);
  const get = (k: string) => {
    const v = env[k];
    return v === undefined || v.trim() === '' ? undefined : v;
  };
  const int = (k: string, fallback: number, min: number, max = Number.MAX_SAFE_INTEGER, fromFile?: unknown) => {
    const raw = get(k) ?? (fromFile === undefined ? undefined : String(fromFile));
    if (raw === undefined) return fallback;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min || n > max) {
      problems.push(`${k}=${raw}: expected a whole number from ${min} to ${max}`);
      return fallback;
    }
    return n;
  };

  const hubUrl = get('PERRY_HUB_URL') ?? 'ws://localhost:3457';
  try {
    const u = new URL(hubUrl);
    if (u.protocol !== 'ws:' && u.protocol !== 'wss:') {
      problems.push(
        `PERRY_HUB_URL=${hubUrl}: expected a ws:// or wss:// URL (the gateway's port, e.g. ws://hub:3457, or wss://hub.example.com/ws)`,
      );
    }
  } catch {
    problems.push(`PERRY_HUB_URL=${hubUrl}: not a URL`);
  }

  const name = get('PERRY_WORKER_NAME') ?? defaultName();
  if (!new RegExp(WORKER_NAME_PATTERN).test(name) || name.length > WORKER_NAME_MAX_CHARS) {
    problems.push(
      `PERRY_WORKER_NAME=${name}: letters, digits, '.', '_' and '-' only, starting with a letter or digit, at most ${WORKER_NAME_MAX_CHARS}`,
    );
  }

  const capsRaw = get('PERRY_WORKER_CAPABILITIES');
  let capabilities: string[] = ['linux'];
  if (capsRaw !== undefined) capabilities = list(capsRaw);
  else if (file['capabilities'] !== undefined)
    capabilities = stringArray(file['capabilities'], 'capabilities', problems);
  if (capabilities.length === 0) problems.push('PERRY_WORKER_CAPABILITIES: at least one target');
  for (const c of capabilities) {
    if (!KNOWN_CAPABILITIES.includes(c)) {
      problems.push(`capability "${c}" is not a target the hub knows (${KNOWN_CAPABILITIES.join(', ')})`);
    }
  }

  const wrapperRaw = get('PERRY_WORKER_WRAPPER');
  let wrapper: string[] = [];
  if (wrapperRaw !== undefined) {
    if (wrapperRaw.trim().startsWith('[')) {
      try {
        wrapper = stringArray(JSON.parse(wrapperRaw), 'PERRY_WORKER_WRAPPER', problems);
      } catch {
        problems.push('PERRY_WORKER_WRAPPER: not a JSON array of strings');
      }
    } else wrapper = wrapperRaw.trim().split(/\s+/);
  } else if (file['wrapper'] !== undefined) wrapper = stringArray(file['wrapper'], 'wrapper', problems);

  const str = (v: unknown, where: string): string | undefined => {
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'string' || v.trim() === '') {
      problems.push(`${where}: expected a non-empty string`);
      return undefined;
    }
    return v;
  };
  const artifactsRaw = get('PERRY_WORKER_ARTIFACTS');
  const defaultTarget: TargetConfig = {
    compile: get('PERRY_WORKER_COMMAND') ?? str(file['command'], 'command') ?? DEFAULT_COMPILE,
    package: get('PERRY_WORKER_PACKAGE_COMMAND') ?? str(file['package_command'], 'package_command'),
    artifacts:
      artifactsRaw !== undefined
        ? list(artifactsRaw)
        : file['artifacts'] !== undefined
          ? stringArray(file['artifacts'], 'artifacts', problems)
          : ['**'],
    needsFinishing: null,
  };
  const targets: Record<string, TargetConfig> = {};
  const fileTargets = file['targets'];
  if (
    fileTargets !== undefined &&
    (typeof fileTargets !== 'object' || fileTargets === null || Array.isArray(fileTargets))
  ) {
    problems.push('targets: expected an object of target name to settings');
  }
  const targetNames = new Set([...capabilities, ...Object.keys((fileTargets as object | undefined) ?? {})]);
  for (const target of targetNames) {
    const t = ((fileTargets as Record<string, unknown> | undefined)?.[target] ?? {}) as Record<string, unknown>;
    if (typeof t !== 'object' || t === null || Array.isArray(t)) {
      problems.push(`targets.${target}: expected an object`);
      continue;
    }
    for (const k of Object.keys(t)) {
      if (!TARGET_KEYS.has(k))
        problems.push(`targets.${target}.${k}: unknown setting (${[...TARGET_KEYS].join(', ')})`);
    }
    const key = envKey(target);
    const needs = t['needs_finishing'];
    if (needs !== undefined && needs !== null && typeof needs !== 'string') {
      problems.push(`targets.${target}.needs_finishing: expected a target name or null`);
    }
    targets[target] = {
      compile:
        get(`PERRY_WORKER_COMMAND_${key}`) ?? str(t['command'], `targets.${target}.command`) ?? defaultTarget.compile,
      package:
        get(`PERRY_WORKER_PACKAGE_COMMAND_${key}`) ??
        str(t['package_command'], `targets.${target}.package_command`) ??
        defaultTarget.package,
      artifacts:
        t['artifacts'] !== undefined
          ? stringArray(t['artifacts'], `targets.${target}.artifacts`, problems)
          : defaultTarget.artifacts,
      needsFinishing: typeof needs === 'string' ? needs : null,
    };
  }

  const workDir = resolve(get('PERRY_WORKER_WORK_DIR') ?? join(tmpdir(), 'perry-hub-worker'));
  const perryBinary = get('PERRY_BUILD_PERRY_BINARY') ?? 'perry';
  const logLevel = get('PERRY_WORKER_LOG_LEVEL') ?? 'info';
  if (!['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'].includes(logLevel)) {
    problems.push(`PERRY_WORKER_LOG_LEVEL=${logLevel}: one of trace, debug, info, warn, error, fatal, silent`);
  }
  const reconnectMinMs = int('PERRY_WORKER_RECONNECT_MIN_MS', 1_000, 10);
  const runAsUser = get('PERRY_WORKER_RUN_AS_USER');
  let runAs: WorkerConfig['runAs'];
  if (runAsUser !== undefined) {
    if (process.getuid?.() !== 0) {
      problems.push(
        `PERRY_WORKER_RUN_AS_USER=${runAsUser}: the worker must run as root to start builds as another user`,
      );
    } else {
      try {
        const id = (flag: string) => Number(execFileSync('id', [flag, runAsUser], { encoding: 'utf8' }).trim());
        runAs = { user: runAsUser, uid: id('-u'), gid: id('-g') };
      } catch {
        problems.push(`PERRY_WORKER_RUN_AS_USER=${runAsUser}: no such user`);
      }
    }
  }
  const config: WorkerConfig = {
    hubUrl,
    secret: get('PERRY_HUB_WORKER_SECRET'),
    name,
    capabilities,
    maxConcurrent: int('PERRY_MAX_CONCURRENT_BUILDS', 1, 1, WORKER_MAX_SLOTS, file['max_concurrent']),
    perryBinary,
    workDir,
    targets,
    defaultTarget,
    jobTimeoutSecs: int('PERRY_WORKER_JOB_TIMEOUT_SECS', 3_600, 1, 7 * 86_400, file['job_timeout_secs']),
    killGraceMs: int('PERRY_WORKER_KILL_GRACE_MS', 10_000, 0, 600_000),
    maxTarballBytes: int('PERRY_WORKER_MAX_TARBALL_BYTES', 512 * 1024 * 1024, 1),
    maxExtractedBytes: int('PERRY_WORKER_MAX_EXTRACTED_BYTES', 2 * 1024 * 1024 * 1024, 1),
    maxEntries: int('PERRY_WORKER_MAX_ENTRIES', 100_000, 1),
    wrapper,
    runAs,
    updateCommand: get('PERRY_WORKER_UPDATE_COMMAND'),
    pingIntervalMs: int('PERRY_WORKER_PING_INTERVAL_MS', 30_000, 50),
    staleTimeoutMs: int('PERRY_WORKER_STALE_TIMEOUT_MS', 90_000, 100),
    reconnectMinMs,
    reconnectMaxMs: int('PERRY_WORKER_RECONNECT_MAX_MS', 60_000, reconnectMinMs),
    holdResultSecs: int('PERRY_WORKER_HOLD_RESULT_SECS', 900, 0),
    logLevel,
  };
  if (problems.length > 0) throw new WorkerConfigError(problems);
  return config;
}

export function targetConfig(config: WorkerConfig, target: string): TargetConfig {
  return config.targets[target] ?? config.defaultTarget;
}

function readConfigFile(path: string | undefined, problems: string[]): Record<string, unknown> {
  if (path === undefined || path.trim() === '') return {};
  const full = isAbsolute(path) ? path : resolve(path);
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(full, 'utf8'));
  } catch (err) {
    problems.push(`config file ${full}: ${(err as Error).message}`);
    return {};
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    problems.push(`config file ${full}: expected a JSON object`);
    return {};
  }
  for (const k of Object.keys(parsed)) {
    if (!FILE_KEYS.has(k)) problems.push(`config file ${full}: unknown setting "${k}" (${[...FILE_KEYS].join(', ')})`);
  }
  return parsed as Record<string, unknown>;
}

function stringArray(v: unknown, where: string, problems: string[]): string[] {
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string' && x !== '')) {
    problems.push(`${where}: expected an array of non-empty strings`);
    return [];
  }
  return v as string[];
}
