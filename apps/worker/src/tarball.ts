/**
 * The project tarball: downloaded with the job's Bearer token (raw bytes where the hub offers
 * them, `Accept: application/octet-stream`; the original's base64 text otherwise), kept on disk,
 * then unpacked with node-tar into a fresh directory. Anything that could write outside that
 * directory or is not a plain file, directory or link inside it refuses the whole tarball:
 * `..` and absolute paths, links pointing out, devices and FIFOs, too many entries, and more
 * unpacked bytes than allowed (a decompression bomb is stopped while it inflates).
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { posix } from 'node:path';
import { Readable, Transform, pipeline, type TransformCallback } from 'node:stream';
import { pipeline as pipelineAsync } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { Unpack, type ReadEntry } from 'tar';

export class TarballError extends Error {}

export interface DownloadResult {
  bytes: number;
  encoding: 'raw' | 'base64';
}

/** Streaming base64 decoding (whitespace ignored; anything else outside the alphabet is an error). */
class Base64Decoder extends Transform {
  #rest = '';
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    const text = this.#rest + chunk.toString('latin1').replace(/\s+/g, '');
    if (/[^A-Za-z0-9+/=]/.test(text)) return done(new TarballError('the tarball is neither raw bytes nor base64 text'));
    const usable = text.length - (text.length % 4);
    this.#rest = text.slice(usable);
    done(null, Buffer.from(text.slice(0, usable), 'base64'));
  }
  override _flush(done: TransformCallback): void {
    done(null, this.#rest === '' ? undefined : Buffer.from(this.#rest, 'base64'));
  }
}

/** Passes bytes through, failing once more than `max` went by. */
class Limit extends Transform {
  seen = 0;
  constructor(
    private readonly max: number,
    private readonly what: () => string,
  ) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.seen += chunk.length;
    if (this.seen > this.max) return done(new TarballError(this.what()));
    done(null, chunk);
  }
}

export async function downloadTarball(
  url: string,
  token: string | undefined,
  file: string,
  maxBytes: number,
  signal: AbortSignal,
): Promise<DownloadResult> {
  let res: Response;
  try {
    res = await fetch(url, {
      headers: {
        accept: 'application/octet-stream, text/plain;q=0.5',
        ...(token !== undefined ? { authorization: `Bearer ${token}` } : {}),
      },
      signal,
    });
  } catch (err) {
    if (signal.aborted) throw err;
    throw new TarballError(`Failed to download tarball: ${(err as Error).message}`);
  }
  if (!res.ok || !res.body) {
    const body = (await res.text().catch(() => '')).slice(0, 300);
    throw new TarballError(`Failed to download tarball: HTTP ${res.status} ${body}`);
  }
  const raw = /application\/octet-stream/i.test(res.headers.get('content-type') ?? '');
  const limit = new Limit(maxBytes, () => limitMessage(maxBytes));
  const source = Readable.fromWeb(res.body as never);
  const stages: (Readable | Transform)[] = [source];
  if (!raw)
    stages.push(new Limit(Math.ceil((maxBytes * 4) / 3) + 4096, () => limitMessage(maxBytes)), new Base64Decoder());
  stages.push(limit);
  await pipelineAsync([...stages, createWriteStream(file, { mode: 0o600 })] as never, { signal });
  if (limit.seen === 0) throw new TarballError('the project tarball is empty');
  return { bytes: limit.seen, encoding: raw ? 'raw' : 'base64' };
}

const limitMessage = (maxBytes: number) =>
  `the project tarball is larger than ${maxBytes} bytes (PERRY_WORKER_MAX_TARBALL_BYTES)`;

export interface ExtractLimits {
  maxExtractedBytes: number;
  maxEntries: number;
}

export interface ExtractResult {
  entries: number;
  bytes: number;
}

const ALLOWED_TYPES = new Set(['File', 'OldFile', 'ContiguousFile', 'Directory', 'SymbolicLink', 'Link']);

/** Why an entry may not be unpacked, or undefined when it may. Paths are as written in the archive. */
export function entryProblem(path: string, type: string, linkpath: string | undefined): string | undefined {
  const shown = JSON.stringify(path);
  if (!ALLOWED_TYPES.has(type)) {
    return `entry ${shown} is a ${type} (only files, directories and links inside the project are allowed)`;
  }
  if (path.startsWith('/') || /^[A-Za-z]:/.test(path) || path.startsWith('\\')) {
    return `entry ${shown} has an absolute path`;
  }
  if (path.split(/[/\\]/).includes('..')) return `entry ${shown} has a '..' path component`;
  if (type === 'SymbolicLink' || type === 'Link') {
    const link = linkpath ?? '';
    if (link === '' || link.startsWith('/') || /^[A-Za-z]:/.test(link) || link.startsWith('\\')) {
      return `entry ${shown} links to an absolute path ${JSON.stringify(link)}`;
    }
    // A symbolic link resolves from its own directory, a hard link from the archive's root.
    const base = type === 'SymbolicLink' ? posix.dirname(path) : '.';
    const resolved = posix.normalize(posix.join(base, link.replace(/\\/g, '/')));
    if (resolved === '..' || resolved.startsWith('../') || posix.isAbsolute(resolved)) {
      return `entry ${shown} links outside the project directory (${JSON.stringify(link)})`;
    }
  }
  return undefined;
}

/** gzip'd or plain tar, by magic; anything else is not a project tarball. */
async function sniff(file: string): Promise<'gzip' | 'tar'> {
  const fh = await open(file, 'r');
  try {
    const head = Buffer.alloc(512);
    const { bytesRead } = await fh.read(head, 0, 512, 0);
    if (bytesRead >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
    if (bytesRead >= 262 && head.subarray(257, 262).toString('latin1') === 'ustar') return 'tar';
  } finally {
    await fh.close();
  }
  throw new TarballError('the project tarball is not a gzip or tar archive');
}

export async function extractTarball(file: string, dest: string, limits: ExtractLimits): Promise<ExtractResult> {
  const kind = await sniff(file);
  let entries = 0;
  let bytes = 0;
  let refused: TarballError | undefined;
  // Headers and padding on top of the contents: 512 bytes a header, and the end blocks.
  const inflated = new Limit(
    limits.maxExtractedBytes + 1024 * (limits.maxEntries + 4),
    () => `the project unpacks to more than ${limits.maxExtractedBytes} bytes (PERRY_WORKER_MAX_EXTRACTED_BYTES)`,
  );
  const stages: (Readable | Transform)[] = [createReadStream(file)];
  if (kind === 'gzip') stages.push(createGunzip());
  stages.push(inflated);
  return new Promise<ExtractResult>((resolve, reject) => {
    let settled = false;
    const fail = (err: Error) => {
      if (settled) return;
      settled = true;
      source.destroy();
      reject(err instanceof TarballError ? err : new TarballError(`the project tarball is damaged: ${err.message}`));
    };
    const source = (pipeline as (...s: unknown[]) => Readable)(...stages, (err: Error | null) => {
      if (err) fail(err);
    });
    const refuse = (why: string) => {
      refused ??= new TarballError(why);
      fail(refused);
      return false;
    };
    const unpack = new Unpack({
      cwd: dest,
      strict: true,
      preserveOwner: false,
      filter: (path: string, entry: unknown) => {
        if (refused) return false;
        const e = entry as ReadEntry;
        entries += 1;
        if (entries > limits.maxEntries) {
          return refuse(`the project tarball has more than ${limits.maxEntries} entries (PERRY_WORKER_MAX_ENTRIES)`);
        }
        const problem = entryProblem(path, e.type, e.linkpath);
        if (problem) return refuse(problem);
        // No setuid, setgid or sticky bits, nothing writable by others: at most rwxr-xr-x.
        if (typeof e.mode === 'number') e.mode &= 0o755;
        bytes += e.size ?? 0;
        if (bytes > limits.maxExtractedBytes) {
          return refuse(
            `the project unpacks to more than ${limits.maxExtractedBytes} bytes (PERRY_WORKER_MAX_EXTRACTED_BYTES)`,
          );
        }
        return true;
      },
    });
    unpack.on('error', (err: Error) => fail(err));
    unpack.on('close', () => {
      if (settled) return;
      settled = true;
      resolve({ entries, bytes });
    });
    source.pipe(unpack as unknown as NodeJS.WritableStream);
  });
}
