/**
 * The frames this worker writes, shaped like the Linux Rust worker's (reference 2.4 and 8.2):
 * messages built with serde's `json!` go out with their keys sorted and `duration_secs` as an f64
 * (`12.0`); `worker_hello` and `update_result` keep their declaration order. The hub does not care
 * about key order; captured transcripts and the conformance tests do.
 */

/** Stage names the CLI understands (reference 2.4.2). */
export const STAGES = [
  'queued',
  'extracting',
  'compiling',
  'generating_assets',
  'bundling',
  'signing',
  'notarizing',
  'packaging',
  'uploading',
  'publishing',
  'verifying',
  'complete',
] as const;
export type StageName = (typeof STAGES)[number];

export const isStage = (s: string): s is StageName => (STAGES as readonly string[]).includes(s);

/** An f64 field: serde prints `1.0` where JSON.stringify prints `1`. */
class F64 {
  constructor(readonly value: number) {}
}

type Json = null | boolean | number | string | F64 | Json[] | { [key: string]: Json | undefined };

function serde(value: Json, sortKeys = true): string {
  if (value instanceof F64) return Number.isInteger(value.value) ? value.value.toFixed(1) : String(value.value);
  if (Array.isArray(value)) return `[${value.map((v) => serde(v, sortKeys)).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const keys = Object.keys(value).filter((k) => value[k] !== undefined);
    if (sortKeys) keys.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${keys.map((k) => `${JSON.stringify(k)}:${serde(value[k] as Json, sortKeys)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

export interface HelloFields {
  capabilities: readonly string[];
  name: string;
  secret: string | undefined;
  perryVersion: string | undefined;
  maxConcurrent: number;
}

export const hello = (f: HelloFields): string =>
  serde(
    {
      type: 'worker_hello',
      capabilities: [...f.capabilities],
      name: f.name,
      secret: f.secret,
      perry_version: f.perryVersion,
      max_concurrent: f.maxConcurrent,
    },
    false,
  );

export const updateResult = (success: boolean, oldVersion: string, newVersion: string, error?: string): string =>
  serde({ type: 'update_result', success, old_version: oldVersion, new_version: newVersion, error }, false);

export const stage = (jobId: string, name: StageName, message: string): string =>
  serde({ type: 'stage', job_id: jobId, stage: name, message });

export const progress = (jobId: string, name: StageName, percent: number, message: string | null): string =>
  serde({ type: 'progress', job_id: jobId, stage: name, percent, message });

export const log = (jobId: string, name: StageName, line: string, stream: 'stdout' | 'stderr'): string =>
  serde({ type: 'log', job_id: jobId, stage: name, line, stream });

export const error = (jobId: string, message: string): string =>
  serde({ type: 'error', job_id: jobId, code: 'INTERNAL_ERROR', message });

export interface ArtifactInfo {
  name: string;
  size: number;
  sha256: string;
}

/** As the Linux worker sends it: `needs_finishing` (null included) on success, no artifacts on failure. */
export const complete = (
  jobId: string,
  success: boolean,
  durationSecs: number,
  needsFinishing: string | null,
  artifacts: readonly ArtifactInfo[],
): string =>
  serde({
    type: 'complete',
    job_id: jobId,
    success,
    duration_secs: new F64(Math.round(durationSecs * 1000) / 1000),
    needs_finishing: success ? needsFinishing : undefined,
    artifacts: success ? artifacts.map((a) => ({ name: a.name, size: a.size, sha256: a.sha256 })) : [],
  });

/** `job_assign` as this worker reads it (reference 2.3); anything else about it is ignored. */
export interface JobAssign {
  job_id: string;
  auth_token?: string | undefined;
  manifest: Record<string, unknown>;
  credentials: Record<string, unknown>;
  tarball_url: string;
  artifact_upload_url?: string | undefined;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The hub's frames this worker acts on; others (proceed_distribute, ...) are ignored, as by the Rust workers. */
export type HubFrame =
  | { type: 'job_assign'; assign: JobAssign }
  | { type: 'cancel'; jobId: string }
  | { type: 'update_perry' }
  | { type: 'error'; code: string; message: string }
  | { type: 'other'; raw: string };

export function parseHubFrame(text: string): HubFrame {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return { type: 'other', raw: text.slice(0, 200) };
  }
  if (!isObject(v)) return { type: 'other', raw: text.slice(0, 200) };
  const str = (k: string) => (typeof v[k] === 'string' ? v[k] : undefined);
  switch (v['type']) {
    case 'job_assign': {
      const jobId = str('job_id');
      const tarballUrl = str('tarball_url');
      if (jobId === undefined || tarballUrl === undefined) break;
      return {
        type: 'job_assign',
        assign: {
          job_id: jobId,
          auth_token: str('auth_token'),
          manifest: isObject(v['manifest']) ? v['manifest'] : {},
          credentials: isObject(v['credentials']) ? v['credentials'] : {},
          tarball_url: tarballUrl,
          artifact_upload_url: str('artifact_upload_url'),
        },
      };
    }
    case 'cancel': {
      const jobId = str('job_id');
      if (jobId !== undefined) return { type: 'cancel', jobId };
      break;
    }
    case 'update_perry':
      return { type: 'update_perry' };
    case 'error':
      return { type: 'error', code: str('code') ?? '', message: str('message') ?? '' };
  }
  return { type: 'other', raw: text.slice(0, 200) };
}
