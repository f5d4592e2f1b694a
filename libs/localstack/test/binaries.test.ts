import { describe, expect, it } from 'vitest';
import { findBinary, LocalStackError } from '../src/index.js';
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
