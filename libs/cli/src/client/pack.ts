/**
 * The project tarball, packed as `perry publish` packs it (its tarball.rs): a gzip tar of the
 * directory without build output, dependencies, VCS data, native binaries and large unnamed
 * blobs. (`[publish] exclude` of perry.toml and `file:` dependencies are not handled here.)
 */
import { readdirSync, statSync } from 'node:fs';
import { basename, extname } from 'node:path';
import { create } from 'tar';

const SKIPPED_DIRS = new Set(['node_modules', '.git', 'dist', 'build', 'target', '.perry', 'xcode']);
const SKIPPED_EXTENSIONS = new Set(['o', 'a', 'dylib', 'so', 'dll', 'exe', 'dmg', 'ipa', 'apk', 'aab']);
const ONE_MB = 1024 * 1024;

/** Whether the CLI would pack this path (relative to the project, with `/` separators). */
export function packs(path: string, isDirectory: boolean, size: number): boolean {
  const name = basename(path);
  if (isDirectory) return !SKIPPED_DIRS.has(name) && !name.endsWith('.app');
  if (name === '.DS_Store') return false;
  const ext = extname(name).slice(1).toLowerCase();
  if (SKIPPED_EXTENSIONS.has(ext)) return false;
  if (size > ONE_MB && (ext === '' || name.startsWith('_'))) return false;
  return true;
}

export interface Packed {
  readonly bytes: Buffer;
  /** Files in the tarball. */
  readonly files: number;
}

export async function packProject(dir: string): Promise<Packed> {
  let files = 0;
  const entries = readdirSync(dir).filter((name) => {
    const st = statSync(`${dir}/${name}`);
    return packs(name, st.isDirectory(), st.size);
  });
  const chunks: Buffer[] = [];
  const stream = create(
    {
      gzip: true,
      cwd: dir,
      portable: true,
      filter: (path, stat) => {
        const directory = 'isDirectory' in stat && stat.isDirectory();
        const keep = packs(path, directory, stat.size);
        if (keep && !directory) files++;
        return keep;
      },
    },
    entries,
  );
  for await (const chunk of stream as AsyncIterable<Buffer>) chunks.push(chunk);
  return { bytes: Buffer.concat(chunks), files };
}
