import { describe, expect, it } from 'vitest';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { findBinary, LocalStackError } from '../src/index.js';
import { compareVersions, MIN_NATS_SERVER_VERSION, natsServerVersion } from '../src/binaries.js';
import { makeTempDir } from './support/helpers.js';

describe('findBinary', () => {
  it('finds the installed servers', () => {
    expect(findBinary('nats-server')).toMatch(/\/nats-server$/);
    expect(findBinary('mariadbd')).toMatch(/\/mariadbd$/);
  });

  it.each([
    ['nats-server', 'apt-get install -y nats-server'],
    ['mariadbd', 'apt-get install -y mariadb-server'],
    ['mariadb-install-db', 'apt-get install -y mariadb-server'],
  ] as const)('names the package when %s is missing', (name, hint) => {
    const empty = makeTempDir('bin');
    try {
      let error: unknown;
      try {
        findBinary(name, { searchDirs: [empty.dir] });
      } catch (err) {
        error = err;
      }
      expect(error).toBeInstanceOf(LocalStackError);
      expect((error as LocalStackError).code).toBe('MISSING_BINARY');
      expect((error as LocalStackError).message).toContain(`${name} not found. Install it with: ${hint}`);
    } finally {
      empty.remove();
    }
  });
});

describe('nats-server version', () => {
  it('refuses a nats-server older than 2.10 with the fix in the message', () => {
    const dir = makeTempDir('oldnats');
    try {
      const fake = join(dir.dir, 'nats-server');
      writeFileSync(fake, '#!/bin/sh\necho "nats-server: v2.9.10"\n');
      chmodSync(fake, 0o755);
      expect(() => findBinary('nats-server', { searchDirs: [dir.dir] })).toThrow(
        /nats-server 2\.10\.0 or newer is required; found only .*\(2\.9\.10\)/,
      );
    } finally {
      dir.remove();
    }
  });

  it('runs 2.10 or newer by default', () => {
    const version = natsServerVersion(findBinary('nats-server'));
    expect(version).toBeDefined();
    expect(compareVersions(version ?? '0', MIN_NATS_SERVER_VERSION)).toBeGreaterThanOrEqual(0);
  });
});
