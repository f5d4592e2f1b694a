// The reference worker's unpacking of project tarballs, on archives crafted header by header:
// a normal project unpacks (links inside it included); every way out of the job directory, a
// device file, too many entries and a decompression bomb refuse the whole tarball with a clear
// reason, and nothing appears outside the directory.
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { TarballError, extractTarball } from '@perry-hub/worker';
import { craftTar, craftTarGz, type CraftEntry } from '../support/tar-craft.js';

const root = mkdtempSync(join(tmpdir(), 'perry-worker-tar-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const LIMITS = { maxExtractedBytes: 1024 * 1024, maxEntries: 50 };

function listAll(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    out.push(relative(root, join(dir, e.name)));
    if (e.isDirectory()) out.push(...listAll(join(dir, e.name)));
  }
  return out.sort();
}

let n = 0;
async function unpack(entries: CraftEntry[] | Buffer, gzip = true, limits = LIMITS) {
  const case_ = join(root, `case-${++n}`);
  const dest = join(case_, 'job', 'project');
  mkdirSync(dest, { recursive: true });
  const file = join(case_, 'job', 'project.tar');
  writeFileSync(file, Buffer.isBuffer(entries) ? entries : gzip ? craftTarGz(entries) : craftTar(entries));
  try {
    const r = await extractTarball(file, dest, limits);
    return { ok: true as const, result: r, dest, case_ };
  } catch (err) {
    return { ok: false as const, error: err as Error, dest, case_ };
  }
}

describe('worker: project tarballs', () => {
  it('unpacks a project with directories, a symlink and a hard link inside it', async () => {
    const r = await unpack([
      { name: 'src/', type: '5' },
      { name: 'src/main.ts', data: 'console.log("hi")\n' },
      { name: 'src/alias.ts', type: '2', linkname: 'main.ts' },
      { name: 'src/hard.ts', type: '1', linkname: 'src/main.ts' },
      { name: 'build.sh', data: '#!/bin/sh\necho ok\n', mode: 0o4755 },
    ]);
    expect(r.ok).toBe(true);
    expect(readFileSync(join(r.dest, 'src', 'main.ts'), 'utf8')).toBe('console.log("hi")\n');
    expect(readlinkSync(join(r.dest, 'src', 'alias.ts'))).toBe('main.ts');
    expect(readFileSync(join(r.dest, 'src', 'hard.ts'), 'utf8')).toBe('console.log("hi")\n');
    // No setuid bit from an archive.
    const { statSync } = await import('node:fs');
    expect(statSync(join(r.dest, 'build.sh')).mode & 0o7000).toBe(0);
    // A plain (not gzip'd) tar unpacks too; anything else is refused.
    expect((await unpack([{ name: 'a.txt', data: 'a' }], false)).ok).toBe(true);
    const junk = await unpack(Buffer.from('definitely not a tarball, long enough to sniff'.repeat(20)));
    expect(junk.ok).toBe(false);
    expect(junk.ok ? '' : junk.error.message).toBe('the project tarball is not a gzip or tar archive');
  });

  const escape = `escape-${process.pid}.txt`;
  const absolute = join(root, `absolute-${process.pid}.txt`);
  const cases: [string, CraftEntry[], RegExp, string[]][] = [
    [
      'a ../ entry',
      [
        { name: 'ok.txt', data: 'ok' },
        { name: `../../${escape}`, data: 'pwned' },
      ],
      /^entry "\.\.\/\.\.\/escape-\d+\.txt" has a '\.\.' path component$/,
      [join(root, escape)],
    ],
    [
      'an absolute path',
      [{ name: absolute, data: 'pwned' }],
      /^entry ".*absolute-\d+\.txt" has an absolute path$/,
      [absolute],
    ],
    [
      'a symlink escaping the directory, then a write through it',
      [
        { name: 'out', type: '2', linkname: '../../..' },
        { name: `out/${escape}`, data: 'pwned' },
      ],
      /^entry "out" links outside the project directory \("\.\.\/\.\.\/\.\."\)$/,
      [join(root, escape)],
    ],
    [
      'a symlink to an absolute path',
      [{ name: 'etc', type: '2', linkname: '/etc' }],
      /^entry "etc" links to an absolute path "\/etc"$/,
      [],
    ],
    [
      'a hard link to a file outside',
      [{ name: 'passwd', type: '1', linkname: '../../../../etc/passwd' }],
      /^entry "passwd" links outside the project directory/,
      [],
    ],
    [
      'a character device',
      [{ name: 'dev/null0', type: '3', devmajor: 1, devminor: 3 }],
      /^entry "dev\/null0" is a CharacterDevice \(only files, directories and links inside the project are allowed\)$/,
      [],
    ],
    ['a block device', [{ name: 'sda', type: '4', devmajor: 8, devminor: 0 }], /^entry "sda" is a BlockDevice/, []],
    ['a FIFO', [{ name: 'pipe', type: '6' }], /^entry "pipe" is a FIFO/, []],
    [
      "a decompression bomb (64 MiB of zeros, 64 KiB gzip'd)",
      [{ name: 'zeros.bin', size: 64 * 1024 * 1024 }],
      /^the project unpacks to more than 1048576 bytes \(PERRY_WORKER_MAX_EXTRACTED_BYTES\)$/,
      [],
    ],
    [
      'too many entries',
      Array.from({ length: 60 }, (_, i) => ({ name: `f${i}.txt`, data: 'x' })),
      /^the project tarball has more than 50 entries \(PERRY_WORKER_MAX_ENTRIES\)$/,
      [],
    ],
  ];
  for (const [what, entries, message, outside] of cases) {
    it(`refuses ${what}, and writes nothing outside the job directory`, async () => {
      const r = await unpack(entries);
      expect(r.ok).toBe(false);
      if (r.ok) return;
      expect(r.error).toBeInstanceOf(TarballError);
      expect(r.error.message).toMatch(message);
      for (const path of outside) expect(existsSync(path)).toBe(false);
      // Only the job directory, its tarball and what unpacked inside the project directory.
      const case_ = relative(root, r.case_);
      for (const path of listAll(r.case_)) {
        expect(
          [`${case_}/job`, `${case_}/job/project.tar`].includes(path) ||
            path.startsWith(`${case_}/job/project/`) ||
            path === `${case_}/job/project`,
        ).toBe(true);
      }
    });
  }

  it('a 256 MiB bomb (about 1000:1) is refused from its header, before it inflates', async () => {
    const bomb = craftTarGz([{ name: 'zeros.bin', size: 256 * 1024 * 1024 }]);
    console.log(`bomb: ${bomb.length} bytes gzip'd for 256 MiB`);
    const started = process.hrtime.bigint();
    const r = await unpack(bomb, true, { maxExtractedBytes: 1024 * 1024, maxEntries: 10 });
    console.log(`refused in ${Number(process.hrtime.bigint() - started) / 1e6} ms`);
    expect(r.ok).toBe(false);
    expect(listAll(r.case_).filter((p) => p.includes('zeros'))).toEqual([]);
  });
});
