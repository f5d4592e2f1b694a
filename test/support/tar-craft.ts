/**
 * Tar archives written header by header (POSIX ustar), for the entries a well-behaved tar
 * library refuses to create: `..` paths, absolute paths, links out of the directory, device files,
 * and sizes far beyond the data that follows (a decompression bomb once gzip'd).
 */
import { gzipSync } from 'node:zlib';

export interface CraftEntry {
  readonly name: string;
  /** '0' file, '2' symlink, '1' hard link, '3' char device, '4' block device, '5' directory, '6' FIFO. */
  readonly type?: '0' | '1' | '2' | '3' | '4' | '5' | '6';
  readonly data?: Buffer | string;
  /** Declared size, when it should differ from the data (streamed as zeros). */
  readonly size?: number;
  readonly linkname?: string;
  readonly mode?: number;
  readonly devmajor?: number;
  readonly devminor?: number;
}

const octal = (n: number, width: number) => n.toString(8).padStart(width - 1, '0') + '\0';

export function header(e: CraftEntry, size: number): Buffer {
  const h = Buffer.alloc(512);
  const put = (text: string, at: number, len: number) => h.write(text.slice(0, len), at, len, 'latin1');
  put(e.name, 0, 100);
  put(octal(e.mode ?? (e.type === '5' ? 0o755 : 0o644), 8), 100, 8);
  put(octal(0, 8), 108, 8);
  put(octal(0, 8), 116, 8);
  put(octal(size, 12), 124, 12);
  put(octal(Math.floor(Date.now() / 1000), 12), 136, 12);
  put(e.type ?? '0', 156, 1);
  put(e.linkname ?? '', 157, 100);
  put('ustar\0', 257, 6);
  put('00', 263, 2);
  put('root', 265, 32);
  put('root', 297, 32);
  put(octal(e.devmajor ?? 0, 8), 329, 8);
  put(octal(e.devminor ?? 0, 8), 337, 8);
  h.fill(' ', 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  put(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8);
  return h;
}

/** The whole archive, uncompressed. */
export function craftTar(entries: readonly CraftEntry[]): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    const data = e.data === undefined ? Buffer.alloc(0) : Buffer.from(e.data);
    const size = e.size ?? data.length;
    parts.push(header(e, size));
    const body = size === data.length ? data : Buffer.concat([data, Buffer.alloc(size - data.length)]);
    parts.push(body, Buffer.alloc((512 - (size % 512)) % 512));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

export const craftTarGz = (entries: readonly CraftEntry[]): Buffer => gzipSync(craftTar(entries), { level: 9 });
