/**
 * An artifact's raw bytes (`Accept: application/octet-stream`, which the hub serves beside the
 * CLI's base64) streamed to a file, hashed as they arrive; accepted only when the SHA-256 is the
 * one the hub announced. With `resume`, a partial file is continued with a Range request.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync, mkdirSync, rmSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { HubClientError } from './common.js';

export interface Downloaded {
  readonly path: string;
  readonly size: number;
  readonly sha256: string;
}

export interface DownloadOptions {
  /** Continue a partial file at `path` (Range), instead of starting over. */
  readonly resume?: boolean;
  readonly onProgress?: (received: number, total: number) => void;
}

async function hashFile(path: string, hash: ReturnType<typeof createHash>): Promise<void> {
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
}

export async function downloadToFile(
  url: string,
  path: string,
  expectedSha256: string,
  options: DownloadOptions = {},
): Promise<Downloaded> {
  const have = options.resume && existsSync(path) ? statSync(path).size : 0;
  let res: Response;
  try {
    res = await fetch(url, {
      headers: { accept: 'application/octet-stream', ...(have > 0 ? { range: `bytes=${have}-` } : {}) },
    });
  } catch (err) {
    throw new HubClientError('DOWNLOAD_FAILED', `download of ${url} failed: ${(err as Error).message}`);
  }
  if (!res.ok || !res.body) {
    throw new HubClientError(
      'DOWNLOAD_FAILED',
      `download failed: ${res.status} ${(await res.text()).slice(0, 200)}`,
      res.status,
    );
  }
  const continued = res.status === 206 && have > 0;
  const hash = createHash('sha256');
  if (continued) await hashFile(path, hash);
  const start = continued ? have : 0;
  const total = start + Number(res.headers.get('content-length') ?? 0);
  let received = start;
  const counting = new Transform({
    transform(chunk: Buffer, _enc, done) {
      hash.update(chunk);
      received += chunk.length;
      options.onProgress?.(received, total);
      done(null, chunk);
    },
  });
  mkdirSync(dirname(path), { recursive: true });
  try {
    await pipeline(
      Readable.fromWeb(res.body as WebReadableStream<Uint8Array>),
      counting,
      createWriteStream(path, { flags: continued ? 'a' : 'w' }),
    );
  } catch (err) {
    if (!options.resume) rmSync(path, { force: true });
    throw new HubClientError('DOWNLOAD_CUT', `download of ${path} was cut: ${(err as Error).message}`);
  }
  const sha256 = hash.digest('hex');
  if (expectedSha256 !== '' && sha256 !== expectedSha256.toLowerCase()) {
    throw new HubClientError(
      'CHECKSUM',
      `${path}: SHA-256 ${sha256} does not match the hub's ${expectedSha256}; the file is kept for inspection`,
    );
  }
  return { path, size: received, sha256 };
}
