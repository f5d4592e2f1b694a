import { execFileSync } from 'node:child_process';
import { accessSync, constants, statSync } from 'node:fs';
import { delimiter, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LocalStackError } from './errors.js';

export type BinaryName = 'nats-server' | 'mariadbd' | 'mariadb-install-db';

/** Debian package that ships each binary, for the "how to fix it" message. */
const DEBIAN_PACKAGE: Record<BinaryName, string> = {
  'nats-server': 'nats-server',
  mariadbd: 'mariadb-server',
  'mariadb-install-db': 'mariadb-server',
};

/**
 * nats-server older than this lacks `sync_interval`, multi-filter consumers and the fix of
 * CVE-2023-47090 (accounts beside `authorization {}` let clients in without credentials).
 */
export const MIN_NATS_SERVER_VERSION = '2.10.0';

/** Where `npm start` / `npm test` unpack Debian 13's nats-server (scripts/bootstrap.mjs). */
export const PROJECT_NATS_SERVER = resolve(
  fileURLToPath(new URL('.', import.meta.url)),
  '../../../.tools/nats-server/usr/sbin/nats-server',
);

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

export function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return Math.sign(d);
  }
  return 0;
}

const versions = new Map<string, string | undefined>();

/** The `x.y.z` a nats-server binary reports, or undefined when it does not run. */
export function natsServerVersion(binary: string): string | undefined {
  if (!versions.has(binary)) {
    let version: string | undefined;
    try {
      const out = execFileSync(binary, ['--version'], { encoding: 'utf8', timeout: 5_000 });
      version = /(\d+\.\d+\.\d+)/.exec(out)?.[1];
    } catch {
      version = undefined;
    }
    versions.set(binary, version);
  }
  return versions.get(binary);
}

/**
 * The absolute path of a server binary. `searchDirs` exists for tests; by default the PATH plus the
 * usual sbin directories are searched. For nats-server, `PERRY_HUB_NATS_SERVER_BIN` and the
 * project's own copy come first, and a binary older than MIN_NATS_SERVER_VERSION is refused.
 */
export function findBinary(name: BinaryName, options: { searchDirs?: readonly string[] } = {}): string {
  const dirs = options.searchDirs ?? defaultSearchDirs();
  const nats = name === 'nats-server';
  const explicit = nats && options.searchDirs === undefined ? natsServerCandidates() : [];
  const candidates = [...explicit, ...dirs.map((dir) => join(dir, name))].filter(isExecutableFile);
  const tooOld: string[] = [];
  for (const candidate of candidates) {
    if (!nats) return candidate;
    const version = natsServerVersion(candidate);
    if (version !== undefined && compareVersions(version, MIN_NATS_SERVER_VERSION) >= 0) return candidate;
    tooOld.push(`${candidate} (${version ?? 'does not run'})`);
  }
  if (tooOld.length > 0) {
    throw new LocalStackError(
      'MISSING_BINARY',
      `nats-server ${MIN_NATS_SERVER_VERSION} or newer is required; found only ${tooOld.join(', ')}. ` +
        `Run npm start or npm test once (they install Debian 13's nats-server into .tools/), ` +
        `or point PERRY_HUB_NATS_SERVER_BIN at a newer binary.`,
    );
  }
  const pkg = DEBIAN_PACKAGE[name];
  throw new LocalStackError(
    'MISSING_BINARY',
    `${name} not found. Install it with: apt-get install -y ${pkg} (searched ${dirs.join(', ')})`,
  );
}

function natsServerCandidates(): string[] {
  const fromEnv = process.env['PERRY_HUB_NATS_SERVER_BIN'];
  return [...(fromEnv ? [resolve(fromEnv)] : []), PROJECT_NATS_SERVER];
}
