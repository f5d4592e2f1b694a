/**
 * Artifacts: every regular file under the job's output directory that matches the target's
 * patterns, hashed, then uploaded one by one with the job's Bearer token: raw bytes
 * (`Content-Type: application/octet-stream`) where the hub takes them, the original's base64 text
 * where it answers 415, with `x-artifact-sha256` either way.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, readdir } from 'node:fs/promises';
import { basename, join, relative, sep } from 'node:path';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { minimatch } from 'minimatch';
import { artifactNameProblem } from '@perry-hub/contracts';

export interface Artifact {
  path: string;
  name: string;
  size: number;
  sha256: string;
}

export class ArtifactError extends Error {}

async function walk(dir: string, out: string[]): Promise<void> {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const full = join(dir, entry.name);
    if (entry.isDirectory()) await walk(full, out);
    else if (entry.isFile()) out.push(full); // links and specials are never uploaded
  }
}

export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** The files to upload, in path order; a name clash or a name the hub would refuse is an error. */
export async function collectArtifacts(outputDir: string, patterns: readonly string[]): Promise<Artifact[]> {
  const files: string[] = [];
  await walk(outputDir, files);
  files.sort();
  const names = new Map<string, string>();
  const found: Artifact[] = [];
  for (const file of files) {
    const rel = relative(outputDir, file).split(sep).join('/');
    if (!patterns.some((p) => minimatch(rel, p, { dot: true }))) continue;
    const name = basename(file);
    const problem = artifactNameProblem(name);
    if (problem) throw new ArtifactError(`artifact ${rel}: its name ${problem}`);
    const clash = names.get(name);
    if (clash) throw new ArtifactError(`artifacts ${clash} and ${rel} would both be uploaded as ${name}`);
    names.set(name, rel);
    const st = await lstat(file);
    found.push({ path: file, name, size: st.size, sha256: await sha256File(file) });
  }
  return found;
}

/** Base64 text of a byte stream, in whole 3-byte groups. */
class Base64Encoder extends Transform {
  #rest = Buffer.alloc(0);
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    const all = Buffer.concat([this.#rest, chunk]);
    const usable = all.length - (all.length % 3);
    this.#rest = all.subarray(usable);
    done(null, all.subarray(0, usable).toString('base64'));
  }
  override _flush(done: TransformCallback): void {
    done(null, this.#rest.length > 0 ? this.#rest.toString('base64') : undefined);
  }
}

export type UploadFailure =
  /** The assignment is no longer valid (a re-dispatch or a restart fenced it out). */
  | { kind: 'stale'; message: string }
  /** The hub could not be reached or failed; worth trying again. */
  | { kind: 'retry'; message: string }
  | { kind: 'fatal'; message: string };

export interface UploadTarget {
  url: string;
  token: string | undefined;
  target: string;
}

/** Whether the hub took raw uploads, once known (the original hub did not). */
export interface UploadMode {
  raw: boolean | undefined;
}

export async function uploadArtifact(
  artifact: Artifact,
  to: UploadTarget,
  mode: UploadMode,
  signal: AbortSignal,
): Promise<UploadFailure | undefined> {
  const attempt = async (raw: boolean) => {
    const file = createReadStream(artifact.path);
    const body = raw ? file : file.pipe(new Base64Encoder());
    return fetch(to.url, {
      method: 'POST',
      headers: {
        ...(to.token !== undefined ? { authorization: `Bearer ${to.token}` } : {}),
        'content-type': raw ? 'application/octet-stream' : 'text/plain',
        'x-artifact-name': encodeHeader(artifact.name),
        'x-artifact-sha256': artifact.sha256,
        'x-artifact-target': to.target,
      },
      body: Readable.toWeb(body) as ReadableStream,
      duplex: 'half',
      signal,
    } as RequestInit);
  };
  let res: Response;
  try {
    res = await attempt(mode.raw !== false);
    if (res.status === 415 && mode.raw !== false) {
      await res.body?.cancel();
      mode.raw = false;
      res = await attempt(false);
    } else if (res.ok) mode.raw ??= true;
  } catch (err) {
    if (signal.aborted) throw err;
    return { kind: 'retry', message: (err as Error).message };
  }
  const text = await res.text().catch(() => '');
  const message = `HTTP ${res.status}: ${text.slice(0, 300)}`;
  if (res.ok) {
    try {
      JSON.parse(text);
      return undefined;
    } catch {
      return {
        kind: 'fatal',
        message: `the hub answered the upload with something other than JSON: ${text.slice(0, 100)}`,
      };
    }
  }
  if ([401, 403, 404, 409].includes(res.status)) return { kind: 'stale', message };
  if (res.status === 429 || res.status >= 500) return { kind: 'retry', message };
  return { kind: 'fatal', message };
}

/** Header values travel as latin1: UTF-8 names go as their bytes, which the hub decodes. */
const encodeHeader = (name: string) => Buffer.from(name, 'utf8').toString('latin1');
