/**
 * One build on a simulated Rust worker: the real pipeline's wire behaviour (reference 3.1, 3.2,
 * 2.4.4, 2.4.7) with scripted timing and faults. The "build" is fake; the transfers are real:
 * the tarball is fetched with the job's Bearer token and decoded from base64, and the artifact,
 * derived from it, is uploaded as base64 text with the `x-artifact-*` headers.
 */
import { createHash } from 'node:crypto';
import * as wire from './rust-wire.js';
import type { WorkerKind } from './rust-wire.js';

/** `job_assign` as the workers deserialize it. */
export interface JobAssign {
  type: 'job_assign';
  job_id: string;
  auth_token?: string;
  manifest: { app_name?: string; targets?: string[] } & Record<string, unknown>;
  credentials: Record<string, unknown>;
  tarball_url: string;
  artifact_upload_url?: string;
}

export interface JobScript {
  /** Time the build takes between download and upload (default 30 ms). */
  readonly durationMs?: number;
  /** Log lines sent while compiling (default 3; every third one on stderr). */
  readonly logLines?: number;
  /** Also a line this often while the build takes its time, as a compiler printing progress. */
  readonly logEveryMs?: number;
  /** Fail the build with this message: `error`, then `complete{success:false}`. */
  readonly fail?: string;
  /** Never finish on its own: only a cancel or the end of the connection/worker stops it. */
  readonly hang?: boolean;
  /** Cut the connection this long after the job started (the worker reconnects as usual). */
  readonly disconnectAfterMs?: number;
  /** Make the upload fail: `error` "Artifact upload failed: ..." and still `complete{success:true}`. */
  readonly failUpload?: boolean;
  /** Also send `published` (as an App Store / Play upload would). */
  readonly published?: { platform: string; message: string; url: string | null };
  /** The artifact's bytes; default: see expectedArtifact(). */
  readonly artifact?: Buffer;
}

/** Everything simulated workers did, across workers and reconnects: for fault tests. */
export class WorkerHistory {
  readonly connections: { worker: string; at: number }[] = [];
  readonly started: { jobId: string; worker: string; kind: WorkerKind; at: number; targets: string[] }[] = [];
  readonly completes: { jobId: string; worker: string; success: boolean; at: number; needsFinishing: string | null }[] =
    [];
  readonly uploads: { jobId: string; worker: string; target: string; status: number; sha256: string }[] = [];
  readonly updates: { worker: string; at: number; to: string }[] = [];
}

/** What a job's worker needs from its worker. */
export interface JobHost {
  readonly kind: WorkerKind;
  readonly name: string;
  readonly history: WorkerHistory;
  send(text: string): boolean;
  dropConnection(): void;
}

export interface RunningJob {
  readonly done: boolean;
  readonly finished: Promise<void>;
  cancel(): void;
  /** Stop silently (the worker went away). */
  abandon(): void;
}

/** The default artifact: a label of who made it, then its input, so a two-stage chain is visible. */
export function expectedArtifact(kind: WorkerKind, target: string, input: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`[${kind} ${target}]`), input]);
}

class Stop extends Error {
  constructor(readonly why: 'cancelled' | 'abandoned') {
    super(why);
  }
}

export function runJob(host: JobHost, assign: JobAssign, script: JobScript, onDone: () => void): RunningJob {
  let cancelled = false;
  let abandoned = false;
  let done = false;
  const wake: (() => void)[] = [];
  const checkpoint = () => {
    if (abandoned) throw new Stop('abandoned');
    if (cancelled) throw new Stop('cancelled');
  };
  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const t = setTimeout(resolve, ms);
      wake.push(() => (clearTimeout(t), resolve()));
    }).then(checkpoint);
  const finished = pipeline(host, assign, script, { checkpoint, sleep }).finally(() => {
    done = true;
    onDone();
  });
  const interrupt = () => {
    for (const w of wake.splice(0)) w();
  };
  return {
    get done() {
      return done;
    },
    finished,
    cancel: () => ((cancelled = true), interrupt()),
    abandon: () => ((abandoned = true), interrupt()),
  };
}

interface Control {
  checkpoint(): void;
  sleep(ms: number): Promise<void>;
}

async function pipeline(host: JobHost, assign: JobAssign, script: JobScript, c: Control): Promise<void> {
  const { kind, history, name } = host;
  const jobId = assign.job_id;
  const started = Date.now();
  const targets = Array.isArray(assign.manifest?.targets) ? assign.manifest.targets.map(String) : [];
  history.started.push({ jobId, worker: name, kind, at: started, targets });
  const send = (text: string) => host.send(text);
  const complete = (success: boolean, artifacts: wire.ArtifactInfo[]) => {
    const needs = wire.needsFinishing(kind, targets);
    if (send(wire.complete(kind, jobId, success, (Date.now() - started) / 1000, needs, artifacts))) {
      history.completes.push({ jobId, worker: name, success, at: Date.now(), needsFinishing: success ? needs : null });
    }
  };
  /** Early failures (manifest, credentials, tarball): only the Windows worker omits the job id. */
  const fail = (message: string, early = false) => {
    send(wire.error(kind, early && kind === 'windows' ? undefined : jobId, message));
    complete(false, []);
  };
  if (script.disconnectAfterMs !== undefined) setTimeout(() => host.dropConnection(), script.disconnectAfterMs);
  try {
    const app = assign.manifest?.app_name;
    if (typeof app !== 'string' || targets.length === 0) return fail('Invalid manifest: missing field `entry`', true);
    send(wire.stage(jobId, 'extracting', 'Downloading project tarball'));
    const input = await download(assign);
    c.checkpoint();
    if (typeof input === 'string') return fail(`Failed to download tarball: ${input}`, true);
    send(wire.progress(jobId, 'extracting', 100, null));
    send(wire.stage(jobId, 'compiling', 'Compiling TypeScript to native'));
    for (let i = 0; i < (script.logLines ?? 3); i++) {
      send(wire.log(jobId, 'compiling', `${name}: line ${i} of ${jobId}`, i % 3 === 2 ? 'stderr' : 'stdout'));
    }
    const every = script.logEveryMs;
    if (every === undefined) await c.sleep(script.durationMs ?? 30);
    else {
      const until = Date.now() + (script.durationMs ?? 30);
      for (let i = 0; Date.now() < until; i++) {
        await c.sleep(Math.min(every, Math.max(0, until - Date.now())));
        send(wire.log(jobId, 'compiling', `${name}: still compiling (${i + 1})`, 'stdout'));
      }
    }
    while (script.hang) await c.sleep(60_000);
    if (script.fail !== undefined) return fail(script.fail);
    send(wire.progress(jobId, 'compiling', 100, null));
    send(wire.stage(jobId, 'packaging', 'Creating package'));
    const target = wire.uploadTarget(kind, targets);
    const bytes = script.artifact ?? expectedArtifact(kind, target, input);
    const artifact: wire.ArtifactInfo = {
      name: wire.artifactName(kind, targets, app, jobId),
      size: bytes.length,
      sha256: createHash('sha256').update(bytes).digest('hex'),
    };
    send(wire.stage(jobId, 'uploading', 'Uploading artifact'));
    const uploadError = await upload(host, assign, artifact, target, bytes, script.failUpload === true);
    c.checkpoint();
    if (uploadError) send(wire.error(kind, jobId, `Artifact upload failed: ${uploadError}`));
    if (script.published) {
      const p = script.published;
      send(wire.published(jobId, p.platform, p.message, p.url));
    }
    complete(true, [artifact]);
  } catch (err) {
    if (err instanceof Stop && err.why === 'abandoned') return;
    fail(err instanceof Stop ? 'Build cancelled' : String((err as Error).message ?? err));
  }
}

/** GET with the Bearer token; the body is base64 text, trimmed then decoded. */
async function download(assign: JobAssign): Promise<Buffer | string> {
  try {
    const res = await fetch(assign.tarball_url, {
      headers: assign.auth_token ? { authorization: `Bearer ${assign.auth_token}` } : {},
    });
    if (!res.ok) return `HTTP ${res.status}: ${await res.text()}`;
    return Buffer.from((await res.text()).trim(), 'base64');
  } catch (err) {
    return String((err as Error).message);
  }
}

/** POST the base64 text; a non-2xx or non-JSON answer is a failure (reference Appendix D #5). */
async function upload(
  host: JobHost,
  assign: JobAssign,
  artifact: wire.ArtifactInfo,
  target: string,
  bytes: Buffer,
  sabotage: boolean,
): Promise<string | undefined> {
  const url = assign.artifact_upload_url;
  if (!url) return 'no artifact_upload_url';
  let status = 0;
  try {
    const res = await fetch(url, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${sabotage ? 'not-the-token' : (assign.auth_token ?? '')}`,
        'content-type': 'text/plain',
        'x-artifact-name': artifact.name,
        'x-artifact-sha256': artifact.sha256,
        'x-artifact-target': target,
      },
      body: bytes.toString('base64'),
    });
    status = res.status;
    const text = await res.text();
    if (!res.ok) return `HTTP ${res.status}: ${text}`;
    JSON.parse(text);
    return undefined;
  } catch (err) {
    return String((err as Error).message);
  } finally {
    host.history.uploads.push({ jobId: assign.job_id, worker: host.name, target, status, sha256: artifact.sha256 });
  }
}
