/**
 * One job, from `job_assign` to `complete`: download and unpack the project into a fresh
 * directory, run the target's commands, upload the artifacts, report. If its connection is lost
 * the build goes on and its messages wait; on the next connection it speaks up (the hub hands the
 * job back if it still waits for this worker), and a later assignment of the same job is adopted.
 * A result nobody takes is dropped after PERRY_WORKER_HOLD_RESULT_SECS.
 */
import { chmod, lchown, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { targetConfig, type WorkerConfig } from './config.js';
import { ArtifactError, collectArtifacts, uploadArtifact, type Artifact, type UploadMode } from './artifacts.js';
import { runCommand, type OutputEvent } from './run.js';
import { TarballError, downloadTarball, extractTarball } from './tarball.js';
import * as wire from './wire.js';

/** What a job needs from its worker. */
export interface JobHost {
  readonly config: WorkerConfig;
  readonly log: Logger;
  readonly uploadMode: UploadMode;
  readonly perryBinary: string;
  /** Send on the job's connection, or keep it until the job is assigned on an open one. */
  send(job: Job, frame: string): void;
  /** True once the job is assigned on the open connection; false at the deadline or on stop. */
  deliverable(job: Job, deadline: number): Promise<boolean>;
  onCommandStart?(jobId: string, pid: number): void;
}

/** Why a build was stopped from outside. */
export type StopReason = 'cancelled' | 'timeout' | 'shutdown';

class BuildFailure extends Error {}

/** Lines kept for the failure message. */
const TAIL_LINES = 20;
/** Frames kept while the job's connection is away; the oldest go first. */
const MAX_PENDING = 5_000;

export class Job {
  readonly id: string;
  assign: wire.JobAssign;
  /** The connection (by number) the latest assignment came on. */
  epoch: number;
  readonly pending: string[] = [];
  droppedPending = 0;
  done = false;
  readonly finished: Promise<void>;
  readonly #host: JobHost;
  readonly #abort = new AbortController();
  #stage: wire.StageName = 'extracting';
  readonly #tail: string[] = [];
  #adopted: (() => void)[] = [];

  constructor(host: JobHost, assign: wire.JobAssign, epoch: number) {
    this.#host = host;
    this.id = assign.job_id;
    this.assign = assign;
    this.epoch = epoch;
    this.finished = this.#run().finally(() => (this.done = true));
  }

  get stopReason(): StopReason | undefined {
    return this.#abort.signal.aborted ? (this.#abort.signal.reason as StopReason) : undefined;
  }

  stop(reason: StopReason): void {
    if (!this.#abort.signal.aborted) this.#abort.abort(reason);
  }

  /** The hub assigned this job again (a new attempt, a new token): carry on under it. */
  adopt(assign: wire.JobAssign, epoch: number): void {
    this.assign = assign;
    this.epoch = epoch;
    for (const wake of this.#adopted.splice(0)) wake();
  }

  /**
   * The worker reconnected while this build ran: carry on on the new connection, saying where the
   * build is (the hub hands the job back to this worker if it still waits for it; if not, what
   * follows is dropped there, and a later assignment of the same job is adopted as before).
   */
  reattach(epoch: number): void {
    this.epoch = epoch;
    this.queue(wire.stage(this.id, this.#stage, 'Reconnected to the hub; the build goes on'));
    for (const wake of this.#adopted.splice(0)) wake();
  }

  /** Resolves at the next adoption or at the deadline. */
  #nextAdoption(deadline: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, Math.max(0, deadline - Date.now()));
      this.#adopted.push(() => (clearTimeout(timer), resolve()));
    });
  }

  queue(frame: string): void {
    this.pending.push(frame);
    if (this.pending.length > MAX_PENDING) {
      this.pending.shift();
      this.droppedPending++;
    }
  }

  #send(frame: string): void {
    this.#host.send(this, frame);
  }

  #stageTo(stage: wire.StageName, message: string): void {
    this.#stage = stage;
    this.#send(wire.stage(this.id, stage, message));
  }

  #output(event: OutputEvent): void {
    if (event.kind === 'stage') return this.#stageTo(event.stage, event.message);
    if (event.kind === 'progress') return this.#send(wire.progress(this.id, this.#stage, event.percent, event.message));
    this.#tail.push(event.line);
    if (this.#tail.length > TAIL_LINES) this.#tail.shift();
    this.#send(wire.log(this.id, this.#stage, event.line, event.stream));
  }

  async #run(): Promise<void> {
    const { config, log } = this.#host;
    const started = Date.now();
    const signal = this.#abort.signal;
    const timer = setTimeout(() => this.stop('timeout'), config.jobTimeoutSecs * 1000);
    let jobDir: string | undefined;
    let credentialsFile: string | undefined;
    /** Signing material goes as soon as the commands are done, before anything is reported. */
    const wipeCredentials = () => (credentialsFile ? rm(credentialsFile, { force: true }) : Promise.resolve());
    try {
      const manifest = this.assign.manifest;
      const targets = checkManifest(manifest, config);
      const buildType = typeof manifest['build_type'] === 'string' ? manifest['build_type'] : 'app';
      await mkdir(config.workDir, { recursive: true, mode: 0o700 });
      jobDir = await mkdtemp(join(config.workDir, `job-${this.id.replace(/[^A-Za-z0-9-]/g, '_').slice(0, 64)}-`));
      const projectDir = join(jobDir, 'project');
      const outputDir = join(jobDir, 'out');
      await mkdir(projectDir, { mode: 0o700 });
      await mkdir(outputDir, { mode: 0o700 });
      log.info({ jobId: this.id, targets, buildType, jobDir }, 'job started');

      this.#stageTo('extracting', 'Downloading project tarball');
      const tarFile = join(jobDir, 'project.tar');
      const got = await downloadTarball(
        this.assign.tarball_url,
        this.assign.auth_token,
        tarFile,
        config.maxTarballBytes,
        signal,
      );
      this.#stageTo('extracting', `Unpacking project (${got.bytes} bytes, ${got.encoding})`);
      const unpacked = await extractTarball(tarFile, projectDir, config);
      await rm(tarFile, { force: true });
      this.#send(wire.progress(this.id, 'extracting', 100, `${unpacked.entries} entries, ${unpacked.bytes} bytes`));
      if (signal.aborted) throw signal.reason;

      const manifestFile = join(jobDir, 'manifest.json');
      await writeFile(manifestFile, JSON.stringify(manifest, null, 2), { mode: 0o600 });
      // Signing material only in a file readable by this user, gone with the job directory.
      credentialsFile = hasCredentials(this.assign.credentials) ? join(jobDir, 'credentials.json') : undefined;
      if (credentialsFile) await writeFile(credentialsFile, JSON.stringify(this.assign.credentials), { mode: 0o600 });

      if (config.runAs) {
        // The build's user owns the job directory; the work directory only lets it through.
        await chmod(config.workDir, 0o711);
        await chownTree(jobDir, config.runAs.uid, config.runAs.gid);
      }
      const patterns = new Set<string>();
      for (const target of targets) {
        const tc = targetConfig(config, target);
        tc.artifacts.forEach((p) => patterns.add(p));
        const env = jobEnv(this.#host.perryBinary, this.id, target, targets, buildType, manifest, {
          jobDir,
          projectDir,
          outputDir,
          manifestFile,
          credentialsFile,
        });
        this.#stageTo('compiling', `Building ${target}${buildType === 'plugin' ? ' (plugin: compile only)' : ''}`);
        await this.#command(tc.compile, projectDir, env, `Build command for ${target}`);
        this.#send(wire.progress(this.id, this.#stage, 100, null));
        if (buildType !== 'plugin' && tc.package !== undefined) {
          this.#stageTo('packaging', `Packaging ${target}`);
          await this.#command(tc.package, projectDir, env, `Package command for ${target}`);
          this.#send(wire.progress(this.id, this.#stage, 100, null));
        }
      }
      await wipeCredentials();
      const artifacts = await collectArtifacts(outputDir, [...patterns]);
      if (artifacts.length === 0) {
        throw new BuildFailure(`The build produced no file matching ${[...patterns].join(', ')} in $PERRY_OUTPUT_DIR`);
      }
      clearTimeout(timer);
      const first = targets[0]!;
      const needs = targetConfig(config, first).needsFinishing;
      await this.#deliver(artifacts, needs ? `${first}-precompiled` : first, needs, started);
    } catch (err) {
      clearTimeout(timer);
      await wipeCredentials().catch(() => undefined);
      const reason = this.stopReason;
      if (reason === 'shutdown') {
        log.warn({ jobId: this.id }, 'job abandoned: the worker is stopping (the hub gives it to another worker)');
        return;
      }
      const message =
        reason === 'cancelled'
          ? 'Build cancelled'
          : reason === 'timeout'
            ? `Build timed out after ${config.jobTimeoutSecs} s (PERRY_WORKER_JOB_TIMEOUT_SECS)`
            : err instanceof TarballError
              ? `Refused the project tarball: ${err.message}`
              : err instanceof BuildFailure || err instanceof ArtifactError
                ? err.message
                : `Internal worker error: ${(err as Error).message ?? String(err)}`;
      log.warn({ jobId: this.id, reason: message }, 'job failed');
      await this.#report(message, started);
    } finally {
      clearTimeout(timer);
      if (jobDir) await rm(jobDir, { recursive: true, force: true }).catch(() => undefined);
      this.assign = { ...this.assign, credentials: {}, auth_token: undefined };
    }
  }

  async #command(command: string, cwd: string, env: NodeJS.ProcessEnv, what: string): Promise<void> {
    const { config } = this.#host;
    this.#tail.length = 0;
    const outcome = await runCommand({
      command,
      cwd,
      env,
      wrapper: config.wrapper,
      runAs: config.runAs,
      killGraceMs: config.killGraceMs,
      signal: this.#abort.signal,
      onOutput: (e) => this.#output(e),
      onStart: (pid) => this.#host.onCommandStart?.(this.id, pid),
    });
    if (outcome.kind === 'stopped') throw outcome.reason;
    if (outcome.kind === 'failed-to-start') throw new BuildFailure(`${what} could not start: ${outcome.error.message}`);
    if (outcome.code === 0) return;
    const status = outcome.code !== null ? `exited with status ${outcome.code}` : `was killed by ${outcome.signal}`;
    const tail = this.#tail.length > 0 ? `; last output:\n${this.#tail.join('\n')}` : '';
    throw new BuildFailure(`${what} ${status}${tail}`);
  }

  /** Failure: `error`, then `complete{success:false}`, on a connection the job is assigned on. */
  async #report(message: string, started: number): Promise<void> {
    const deadline = Date.now() + this.#host.config.holdResultSecs * 1000;
    this.#send(wire.error(this.id, message));
    this.#send(wire.complete(this.id, false, (Date.now() - started) / 1000, null, []));
    if (!(await this.#host.deliverable(this, deadline))) {
      this.#host.log.warn({ jobId: this.id }, 'failure not reported: the hub never assigned the job again');
    }
  }

  async #deliver(artifacts: Artifact[], target: string, needs: string | null, started: number): Promise<void> {
    const { config, log } = this.#host;
    const deadline = Date.now() + config.holdResultSecs * 1000;
    this.#stageTo('uploading', `Uploading ${artifacts.length} artifact${artifacts.length === 1 ? '' : 's'}`);
    let retryMs = 500;
    for (;;) {
      if (!(await this.#host.deliverable(this, deadline))) {
        log.warn({ jobId: this.id }, 'result dropped: the hub never assigned the job again');
        return;
      }
      const epoch = this.epoch;
      const url = this.assign.artifact_upload_url;
      if (url === undefined) {
        return this.#report(
          'The hub gave no artifact_upload_url (path-based artifact_ready is not supported)',
          started,
        );
      }
      let failure: Awaited<ReturnType<typeof uploadArtifact>>;
      for (const artifact of artifacts) {
        failure = await uploadArtifact(
          artifact,
          { url, token: this.assign.auth_token, target },
          this.#host.uploadMode,
          AbortSignal.timeout(30 * 60_000),
        );
        if (failure) break;
        log.info({ jobId: this.id, name: artifact.name, size: artifact.size }, 'artifact uploaded');
      }
      if (!failure) {
        this.#send(wire.progress(this.id, 'uploading', 100, null));
        this.#send(wire.complete(this.id, true, (Date.now() - started) / 1000, needs, artifacts));
        log.info({ jobId: this.id, artifacts: artifacts.length }, 'job complete');
        return;
      }
      if (failure.kind === 'fatal') return this.#report(`Artifact upload failed: ${failure.message}`, started);
      if (Date.now() > deadline) {
        log.warn({ jobId: this.id, failure }, 'result dropped: uploads kept failing');
        return;
      }
      if (failure.kind === 'stale') {
        // Fenced out (a re-dispatch or a hub restart): only a new assignment can take the result.
        log.info({ jobId: this.id, why: failure.message }, 'upload refused; waiting for the job to be assigned again');
        if (this.epoch === epoch) await this.#nextAdoption(deadline);
      } else {
        log.info({ jobId: this.id, why: failure.message, retryMs }, 'upload failed; retrying');
        await new Promise((r) => setTimeout(r, retryMs));
        retryMs = Math.min(retryMs * 2, 10_000);
      }
    }
  }
}

async function chownTree(path: string, uid: number, gid: number): Promise<void> {
  await lchown(path, uid, gid);
  for (const entry of await readdir(path, { withFileTypes: true })) {
    const full = join(path, entry.name);
    if (entry.isDirectory()) await chownTree(full, uid, gid);
    else await lchown(full, uid, gid);
  }
}

function checkManifest(manifest: Record<string, unknown>, config: WorkerConfig): string[] {
  const targets = manifest['targets'];
  if (!Array.isArray(targets) || targets.length === 0 || !targets.every((t) => typeof t === 'string')) {
    throw new BuildFailure('Invalid manifest: missing field `targets`');
  }
  for (const t of targets as string[]) {
    if (!config.capabilities.includes(t)) throw new BuildFailure(`This worker does not build target ${t}`);
  }
  const entry = manifest['entry'];
  if (entry !== undefined && entry !== null) {
    if (typeof entry !== 'string' || entry.startsWith('/') || entry.split(/[/\\]/).includes('..')) {
      throw new BuildFailure('Invalid manifest: `entry` must be a relative path inside the project');
    }
  }
  return targets as string[];
}

function hasCredentials(credentials: Record<string, unknown>): boolean {
  return Object.values(credentials).some((v) => v !== null && v !== undefined && v !== '');
}

interface JobPaths {
  jobDir: string;
  projectDir: string;
  outputDir: string;
  manifestFile: string;
  credentialsFile: string | undefined;
}

/** Never handed to a build: the hub's secret for workers. */
const WITHHELD = ['PERRY_HUB_WORKER_SECRET'];

export function jobEnv(
  perryBinary: string,
  jobId: string,
  target: string,
  targets: readonly string[],
  buildType: string,
  manifest: Record<string, unknown>,
  paths: JobPaths,
): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of WITHHELD) delete env[k];
  for (const [key, value] of Object.entries(manifest)) {
    if (!/^[A-Za-z][A-Za-z0-9_]{0,63}$/.test(key)) continue;
    let text: string | undefined;
    if (typeof value === 'string') text = value;
    else if (typeof value === 'number' || typeof value === 'boolean') text = String(value);
    else if (Array.isArray(value) && value.every((v) => typeof v === 'string')) text = value.join(',');
    else if (value !== null && value !== undefined) text = JSON.stringify(value);
    if (text !== undefined && !text.includes('\0')) env[`PERRY_MANIFEST_${key.toUpperCase()}`] = text;
  }
  const str = (k: string) => (typeof manifest[k] === 'string' ? (manifest[k] as string) : '');
  Object.assign(env, {
    PERRY_BIN: perryBinary,
    PERRY_JOB_ID: jobId,
    PERRY_TARGET: target,
    PERRY_TARGETS: targets.join(','),
    PERRY_BUILD_TYPE: buildType,
    PERRY_ENTRY: str('entry'),
    PERRY_APP_NAME: str('app_name'),
    PERRY_BUNDLE_ID: str('bundle_id'),
    PERRY_APP_VERSION: str('version'),
    PERRY_JOB_DIR: paths.jobDir,
    PERRY_PROJECT_DIR: paths.projectDir,
    PERRY_OUTPUT_DIR: paths.outputDir,
    PERRY_MANIFEST_FILE: paths.manifestFile,
  });
  if (paths.credentialsFile) env['PERRY_CREDENTIALS_FILE'] = paths.credentialsFile;
  return env;
}
