/**
 * Downloading an artifact through its one-time link, raw (`Accept: application/octet-stream`,
 * which the hub serves beside the CLI's base64), to a file, hashing as it goes: the result is
 * accepted only when its SHA-256 is the one the hub announced.
 */
import { createHash } from 'node:crypto';
import { createWriteStream, mkdirSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { CliError, EXIT } from './common.js';

export interface Downloaded {
  readonly path: string;
  readonly size: number;
  readonly sha256: string;
}

export async function downloadArtifact(
  url: string,
  path: string,
  expectedSha256: string,
  onProgress: (received: number, total: number) => void,
): Promise<Downloaded> {
  let res: Response;
  try {
    res = await fetch(url, { headers: { accept: 'application/octet-stream' } });
  } catch (err) {
    throw new CliError(`download of ${url} failed: ${(err as Error).message}`, EXIT.download);
  }
  if (!res.ok || !res.body) {
    throw new CliError(`download failed: ${res.status} ${(await res.text()).slice(0, 200)}`, EXIT.download);
  }
  const total = Number(res.headers.get('content-length') ?? 0);
  const hash = createHash('sha256');
  let received = 0;
  const counting = new Transform({
    transform(chunk: Buffer, _enc, done) {
      hash.update(chunk);
      received += chunk.length;
      onProgress(received, total);
      done(null, chunk);
    },
  });
  mkdirSync(dirname(path), { recursive: true });
  try {
    await pipeline(Readable.fromWeb(res.body as WebReadableStream<Uint8Array>), counting, createWriteStream(path));
  } catch (err) {
    rmSync(path, { force: true });
    throw new CliError(`download of ${path} was cut: ${(err as Error).message}`, EXIT.download);
  }
  const sha256 = hash.digest('hex');
  if (expectedSha256 !== '' && sha256 !== expectedSha256.toLowerCase()) {
    throw new CliError(
      `${path}: SHA-256 ${sha256} does not match the hub's ${expectedSha256}; the file is kept for inspection`,
      EXIT.download,
    );
  }
  return { path, size: received, sha256 };
}
