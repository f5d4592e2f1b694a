/**
 * `perry-hub submit DIR --target T...`: pack the project as `perry publish` does, upload it with a
 * progress bar, follow the build live (stage headers, log lines, queue position and why it waits),
 * download every artifact with a progress bar and check its SHA-256. Exit 0 only when the build
 * succeeded and every artifact arrived intact; `--no-wait` returns once the hub accepted it.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { Presets, SingleBar } from 'cli-progress';
import { CLIENT_TARGETS } from '@perry-hub/contracts';
import { CliError, EXIT, formatBytes, serverUrl, writeJson, type Io, type ServerOptions } from './common.js';
import { downloadArtifact, type Downloaded } from './download.js';
import { checkOneOf } from './options.js';
import { packProject } from './pack.js';
import { submitBuild, type BuildAccepted } from './upload.js';
import { watchJob, wsUrlOf, type JobMessage } from './watch.js';

export interface SubmitOptions extends ServerOptions {
  target: string[];
  wait: boolean;
  download: boolean;
  output: string;
  appName?: string;
  bundleId?: string;
  appVersion?: string;
  entry?: string;
  manifest?: string;
  credentials?: string;
}

interface Artifact {
  name: string;
  size: number;
  sha256: string;
  url: string;
}

export interface SubmitReport {
  job_id: string | null;
  server: string;
  targets: string[];
  tarball_bytes: number;
  position: number | null;
  outcome: 'succeeded' | 'failed' | 'queued' | 'disconnected' | 'download-failed';
  success: boolean;
  duration_secs: number | null;
  error: { code: string; message: string } | null;
  artifacts: { name: string; size: number; sha256: string; path: string | null; verified: boolean }[];
}

const CREDENTIALS_NONE = {
  apple_team_id: null,
  apple_signing_identity: null,
  apple_key_id: null,
  apple_issuer_id: null,
  apple_p8_key: null,
};

function readJsonFile(path: string, what: string): Record<string, unknown> {
  try {
    const v: unknown = JSON.parse(readFileSync(path, 'utf8'));
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not a JSON object');
    return v as Record<string, unknown>;
  } catch (err) {
    throw new CliError(`${what} ${path}: ${(err as Error).message}`, EXIT.usage);
  }
}

/** The manifest the CLI would send, from package.json and the flags (reference 5.1). */
export function projectManifest(dir: string, options: SubmitOptions): Record<string, unknown> {
  const pkgFile = join(dir, 'package.json');
  const pkg = existsSync(pkgFile) ? readJsonFile(pkgFile, 'package.json') : {};
  const rawName = options.appName ?? (typeof pkg['name'] === 'string' ? pkg['name'] : basename(dir));
  const appName =
    rawName
      .replace(/^@[^/]+\//, '')
      .replace(/[^A-Za-z0-9 _-]/g, '-')
      .slice(0, 200) || 'App';
  const pkgVersion = typeof pkg['version'] === 'string' ? pkg['version'].replace(/[^0-9.]/g, '') : '';
  const main = typeof pkg['main'] === 'string' && /\.ts$/.test(pkg['main']) ? pkg['main'] : undefined;
  const base = options.manifest ? readJsonFile(options.manifest, '--manifest') : {};
  return {
    app_name: appName,
    bundle_id: options.bundleId ?? `com.perry.${appName.toLowerCase().replace(/[^a-z0-9]+/g, '-')}`,
    version: options.appVersion ?? (pkgVersion || '1.0.0'),
    short_version: null,
    entry: options.entry ?? main ?? 'src/main.ts',
    icon: null,
    category: null,
    minimum_os_version: null,
    entitlements: null,
    ...base,
    targets: options.target.map((t) => t.toLowerCase()),
  };
}

/** Progress bars on a terminal only; elsewhere nothing (the log lines still tell the story). */
function progressBar(io: Io, label: string, show: boolean) {
  if (!show || io.err.isTTY !== true) return { update: () => undefined, stop: () => undefined };
  const bar = new SingleBar(
    {
      format: `${label} [{bar}] {percentage}% | {done} of {all}`,
      stream: io.err as NodeJS.WriteStream,
      hideCursor: true,
      clearOnComplete: false,
      barsize: 30,
    },
    Presets.shades_classic,
  );
  let started = false;
  return {
    update: (value: number, total: number) => {
      const payload = { done: formatBytes(value), all: total > 0 ? formatBytes(total) : '?' };
      if (!started) {
        bar.start(Math.max(total, 1), value, payload);
        started = true;
      } else {
        bar.setTotal(Math.max(total, 1));
        bar.update(value, payload);
      }
    },
    stop: () => started && bar.stop(),
  };
}

export async function runSubmit(dirArg: string, options: SubmitOptions, io: Io): Promise<number> {
  const server = serverUrl(options, io.env);
  const dir = resolve(dirArg);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new CliError(`${dirArg} is not a directory`, EXIT.usage);
  if (options.target.length === 0) throw new CliError('at least one --target is needed', EXIT.usage);
  // Before packing and uploading: the hub would refuse the manifest only after the upload.
  for (const target of options.target) checkOneOf('--target', target.toLowerCase(), CLIENT_TARGETS);
  const apiToken = options.apiToken ?? io.env['PERRY_HUB_API_TOKEN'];
  const licenseKey = options.licenseKey ?? io.env['PERRY_LICENSE_KEY'];
  if (!apiToken && !licenseKey) {
    throw new CliError(
      'a license key or API token is needed: set PERRY_LICENSE_KEY or PERRY_HUB_API_TOKEN, or pass --license-key / --api-token',
      EXIT.usage,
    );
  }
  const human = !options.json;
  const say = (line: string) => human && io.out.write(`${line}\n`);
  const tty = io.out.isTTY === true;
  const paint = (code: string, text: string) => (tty ? `\x1b[${code}m${text}\x1b[0m` : text);

  const manifest = projectManifest(dir, options);
  const credentials = options.credentials
    ? { ...CREDENTIALS_NONE, ...readJsonFile(options.credentials, '--credentials') }
    : CREDENTIALS_NONE;
  const packed = await packProject(dir);
  const report: SubmitReport = {
    job_id: null,
    server,
    targets: manifest['targets'] as string[],
    tarball_bytes: packed.bytes.length,
    position: null,
    outcome: 'queued',
    success: false,
    duration_secs: null,
    error: null,
    artifacts: [],
  };
  say(`Packed ${packed.files} files of ${dir} (${formatBytes(packed.bytes.length)} gzip)`);

  const upload = progressBar(io, 'Uploading  ', human);
  let accepted: BuildAccepted;
  try {
    accepted = await submitBuild(
      server,
      { manifest, credentials, tarball: packed.bytes, ...(apiToken ? { apiToken } : { licenseKey: licenseKey! }) },
      (sent, total) => upload.update(sent, total),
    );
  } finally {
    upload.stop();
  }
  report.job_id = accepted.job_id;
  report.position = accepted.position;
  say(`Job ${paint('1', accepted.job_id)} accepted, queue position ${accepted.position}`);
  if (!options.wait) {
    if (options.json) writeJson(io, report);
    return EXIT.ok;
  }

  const ready = new Map<string, Artifact>();
  let finished: JobMessage | undefined;
  let lastPosition = accepted.position;
  let lastStage = '';
  const stageBar = progressBar(io, 'Building   ', human);
  let barOn = false;
  const line = (text: string) => {
    if (barOn) {
      stageBar.stop();
      barOn = false;
    }
    say(text);
  };
  const end = await watchJob(wsUrlOf(server, accepted.ws_url), accepted.job_id, {
    onReconnect: (n, ms) =>
      human && io.err.write(`connection to the hub lost; reconnecting (${n}) in ${ms / 1000} s\n`),
    onMessage: (m) => {
      const str = (k: string) => (typeof m[k] === 'string' ? (m[k] as string) : '');
      switch (m.type) {
        case 'queue_update': {
          const position = Number(m['position']);
          const why = str('message');
          if (position !== lastPosition || why) line(`Queue position ${position}${why ? `: ${why}` : ''}`);
          lastPosition = position;
          return false;
        }
        case 'stage':
          if (str('stage') !== lastStage) line(paint('36;1', `── ${str('stage')} ──`));
          lastStage = str('stage');
          if (str('message')) line(`  ${str('message')}`);
          return false;
        case 'log':
          line(str('stream') === 'stderr' ? paint('33', `  ${str('line')}`) : paint('2', `  ${str('line')}`));
          return false;
        case 'progress':
          if (human && io.err.isTTY === true) {
            stageBar.update(Number(m['percent']), 100);
            barOn = true;
          }
          return false;
        case 'artifact_ready': {
          const a = {
            name: str('artifact_name'),
            size: Number(m['artifact_size']),
            sha256: str('sha256'),
            url: str('download_url'),
          };
          ready.set(a.name, a);
          line(`Artifact ready: ${a.name} (${formatBytes(a.size)}), sha256 ${a.sha256}`);
          return false;
        }
        case 'published':
          line(`Published to ${str('platform')}: ${str('message')}`);
          return false;
        case 'error':
          report.error = { code: str('code'), message: str('message') };
          line(paint('31;1', `Build error [${str('code')}]: ${str('message')}`));
          finished = m;
          return true;
        case 'complete':
          finished = m;
          return true;
        default:
          return false;
      }
    },
  });
  if (barOn) stageBar.stop();

  if (end !== 'ended' || !finished) {
    report.outcome = 'disconnected';
    if (options.json) writeJson(io, report);
    io.err.write(
      `perry-hub: lost the connection to the hub before job ${accepted.job_id} ended; follow it with: perry-hub logs ${accepted.job_id} -f\n`,
    );
    return EXIT.hub;
  }
  if (finished.type === 'complete') report.duration_secs = Number(finished['duration_secs']);
  if (finished.type === 'error' || finished['success'] !== true) {
    report.outcome = 'failed';
    say(
      paint(
        '31;1',
        `Build failed${report.duration_secs !== null ? ` after ${report.duration_secs.toFixed(1)} s` : ''}`,
      ),
    );
    if (options.json) writeJson(io, report);
    return EXIT.failed;
  }
  say(paint('32;1', `Build succeeded in ${report.duration_secs?.toFixed(1) ?? '?'} s`));

  let failure: CliError | undefined;
  for (const a of ready.values()) {
    const entry: SubmitReport['artifacts'][number] = {
      name: a.name,
      size: a.size,
      sha256: a.sha256,
      path: null,
      verified: false,
    };
    report.artifacts.push(entry);
    if (!options.download) continue;
    if (!/^[^/\\]+$/.test(a.name) || a.name === '.' || a.name === '..') {
      failure ??= new CliError(`refusing the unsafe artifact name ${JSON.stringify(a.name)}`, EXIT.download);
      continue;
    }
    const url = /^https?:\/\//.test(a.url) ? a.url : `${server}${a.url}`;
    const bar = progressBar(io, 'Downloading', human);
    let got: Downloaded;
    try {
      got = await downloadArtifact(url, join(resolve(options.output), a.name), a.sha256, (n, total) =>
        bar.update(n, total),
      );
    } catch (err) {
      bar.stop();
      if (!(err instanceof CliError)) throw err;
      failure ??= err;
      line(paint('31;1', err.message));
      continue;
    }
    bar.stop();
    entry.path = got.path;
    entry.verified = true;
    say(`Saved ${got.path} (${formatBytes(got.size)}), SHA-256 verified`);
  }
  if (options.download && ready.size === 0 && !failure) {
    say('The build succeeded without an artifact to download');
  }
  report.outcome = failure ? 'download-failed' : 'succeeded';
  report.success = !failure;
  if (options.json) writeJson(io, report);
  if (failure) {
    io.err.write(`perry-hub: ${failure.message}\n`);
    return failure.exitCode;
  }
  return EXIT.ok;
}
