import { accessSync, constants, statSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { LocalStackError } from './errors.js';

export type BinaryName = 'nats-server' | 'mariadbd' | 'mariadb-install-db';

/** Debian package that ships each binary, for the "how to fix it" message. */
const DEBIAN_PACKAGE: Record<BinaryName, string> = {
  'nats-server': 'nats-server',
  mariadbd: 'mariadb-server',
  'mariadb-install-db': 'mariadb-server',
};

/** Daemons live in sbin, which a non-root PATH often lacks. */
const EXTRA_DIRS = ['/usr/sbin', '/usr/local/sbin', '/usr/bin'];

export function defaultSearchDirs(): string[] {
  const fromPath = (process.env['PATH'] ?? '').split(delimiter).filter((dir) => dir !== '');
  return [...new Set([...fromPath, ...EXTRA_DIRS])];
}

function isExecutableFile(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/**
 * The absolute path of a server binary. `searchDirs` exists for tests; by default the PATH plus the
 * usual sbin directories are searched.
 */
export function findBinary(name: BinaryName, options: { searchDirs?: readonly string[] } = {}): string {
  const dirs = options.searchDirs ?? defaultSearchDirs();
  for (const dir of dirs) {
    const candidate = join(dir, name);
    if (isExecutableFile(candidate)) return candidate;
  }
  const pkg = DEBIAN_PACKAGE[name];
  throw new LocalStackError(
    'MISSING_BINARY',
    `${name} not found. Install it with: apt-get install -y ${pkg} (searched ${dirs.join(', ')})`,
  );
}
