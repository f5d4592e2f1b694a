/**
 * The bytes the three Rust workers put on the wire (reference 2.4, 6 and 8.2), quirks included.
 *
 * serde_json runs without `preserve_order` in all three workers, so every message built with
 * `json!` or `to_value` + insert goes out with its keys sorted (nested objects too), and an f64
 * always carries a decimal point (`12.0`). `worker_hello`, `update_result` and the Windows worker's
 * `ServerMessage::Error` are serialized straight from derived structs and keep declaration order.
 */

export type WorkerKind = 'linux' | 'macos' | 'windows';

/** An f64 field: serde prints `1.0`, JSON.stringify would print `1`. */
export class F64 {
  constructor(readonly value: number) {}
}

type Json = null | boolean | number | string | F64 | Json[] | { [key: string]: Json | undefined };

/** serde_json's compact output for a `Value` (BTreeMap: keys sorted by byte order). */
export function serde(value: Json, sortKeys = true): string {
  if (value instanceof F64) return Number.isInteger(value.value) ? value.value.toFixed(1) : String(value.value);
  if (Array.isArray(value)) return `[${value.map((v) => serde(v, sortKeys)).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const keys = Object.keys(value).filter((k) => value[k] !== undefined);
    if (sortKeys) keys.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${keys.map((k) => `${JSON.stringify(k)}:${serde(value[k] as Json, sortKeys)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

export const CAPABILITIES: Record<WorkerKind, readonly string[]> = {
  linux: ['linux', 'android', 'windows', 'ios', 'macos', 'tvos'],
  macos: ['macos-sign', 'ios-sign'],
  windows: ['windows-sign'],
};

export interface HelloFields {
  name: string;
  secret: string | undefined;
  perryVersion: string | undefined;
  maxConcurrent: number;
}

/** Declaration order; `None` fields are omitted; the Windows struct has no `max_concurrent`. */
export function hello(kind: WorkerKind, f: HelloFields): string {
  return serde(
    {
      type: 'worker_hello',
      capabilities: [...CAPABILITIES[kind]],
      name: f.name,
      secret: f.secret,
      perry_version: f.perryVersion,
      max_concurrent: kind === 'windows' ? undefined : f.maxConcurrent,
    },
    false,
  );
}

export function updateResult(success: boolean, oldVersion: string, newVersion: string, error?: string): string {
  return serde(
    { type: 'update_result', success, old_version: oldVersion, new_version: newVersion, error: error ?? undefined },
    false,
  );
}

export const stage = (jobId: string, stageName: string, message: string) =>
  serde({ type: 'stage', job_id: jobId, stage: stageName, message });

export const progress = (jobId: string, stageName: string, percent: number, message: string | null) =>
  serde({ type: 'progress', job_id: jobId, stage: stageName, percent, message });

export const log = (jobId: string, stageName: string, line: string, stream: 'stdout' | 'stderr') =>
  serde({ type: 'log', job_id: jobId, stage: stageName, line, stream });

export const published = (jobId: string, platform: string, message: string, url: string | null) =>
  serde({ type: 'published', job_id: jobId, platform, message, url });

/**
 * A build failure. Linux and macOS: `{code, job_id, message, type}`. Windows: the same plus
 * `stage: null`; and before it knows its job (bad manifest, credentials or tarball) it serializes
 * the struct: declaration order and no `job_id` at all.
 */
export function error(kind: WorkerKind, jobId: string | undefined, message: string): string {
  if (kind !== 'windows') return serde({ type: 'error', job_id: jobId, code: 'INTERNAL_ERROR', message });
  if (jobId === undefined) return serde({ type: 'error', code: 'INTERNAL_ERROR', message, stage: null }, false);
  return serde({ type: 'error', job_id: jobId, code: 'INTERNAL_ERROR', message, stage: null });
}

export interface ArtifactInfo {
  name: string;
  size: number;
  sha256: string;
}

/** Only the Linux worker sends `needs_finishing` (null included); a failure has no artifacts. */
export function complete(
  kind: WorkerKind,
  jobId: string,
  success: boolean,
  durationSecs: number,
  needsFinishing: string | null,
  artifacts: ArtifactInfo[],
): string {
  return serde({
    type: 'complete',
    job_id: jobId,
    success,
    duration_secs: new F64(Math.round(durationSecs * 1000) / 1000),
    needs_finishing: kind === 'linux' && success ? needsFinishing : undefined,
    artifacts: success ? artifacts.map((a) => ({ name: a.name, size: a.size, sha256: a.sha256 })) : [],
  });
}

const FINISHING = new Set(['windows', 'ios', 'macos']);

/** Linux: `needs_finishing` from the FIRST manifest target (tvos, linux, android: none). */
export function needsFinishing(kind: WorkerKind, targets: readonly string[]): string | null {
  const first = targets[0] ?? '';
  return kind === 'linux' && FINISHING.has(first) ? first : null;
}

/** `x-artifact-target` (reference 2.8 #5). */
export function uploadTarget(kind: WorkerKind, targets: readonly string[]): string {
  const first = targets[0] ?? '';
  if (kind === 'windows') return 'windows';
  if (kind === 'macos') return first;
  return FINISHING.has(first) ? `${first}-precompiled` : first;
}

/** File names in the style of each pipeline's output. */
export function artifactName(kind: WorkerKind, targets: readonly string[], app: string, jobId: string): string {
  const first = targets[0] ?? '';
  if (kind === 'windows') return `${app}-Setup.exe`;
  if (kind === 'macos') return first === 'macos-sign' ? `${app}.dmg` : `${app}-${jobId}.ipa`;
  const ext: Record<string, string> = { android: 'apk', ios: 'ipa', tvos: 'ipa', windows: 'tar.gz', linux: 'AppImage' };
  if (first === 'macos') return `${app}-precompiled.tar.gz`;
  return `${app}-${jobId}.${ext[first] ?? 'tar.gz'}`;
}
