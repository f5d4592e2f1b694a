import { describe, expect } from 'vitest';
import { test } from '@perry-hub/testkit';
import { MIGRATIONS, migrate, dbOptions, openPool, type Pool, type RowDataPacket } from '../src/index.js';

function poolFor(database: { host: string; port: number; user: string; password: string; database: string }): Pool {
  return openPool(dbOptions(database, 2));
}

async function tables(pool: Pool): Promise<string[]> {
  const [rows] = await pool.query<RowDataPacket[]>('SHOW TABLES');
  return rows.map((r) => String(Object.values(r)[0])).sort();
}

const latest = Math.max(...MIGRATIONS.map((m) => m.version));

describe('migrate', () => {
  test('creates the original tables and records the version', async ({ database }) => {
    const pool = poolFor(database);
    try {
      const result = await migrate(pool);
      expect(result.applied).toEqual(MIGRATIONS.map((m) => m.version));
      expect(result.current).toBe(latest);
      expect(await tables(pool)).toEqual(
        expect.arrayContaining(['accounts', 'builds', 'licenses', 'schema_migrations', 'usage_counters']),
      );
    } finally {
      await pool.end();
    }
  });

  test('a second run applies nothing', async ({ database }) => {
    const pool = poolFor(database);
    try {
      await migrate(pool);
      const again = await migrate(pool);
      expect(again).toEqual({ applied: [], current: latest });
      const [rows] = await pool.query<RowDataPacket[]>('SELECT COUNT(*) AS n FROM schema_migrations');
      expect(Number(rows[0]!['n'])).toBe(MIGRATIONS.length);
    } finally {
      await pool.end();
    }
  });

  test('concurrent runs from separate pools apply each migration exactly once', async ({ database }) => {
    const pools = Array.from({ length: 4 }, () => poolFor(database));
    try {
      const results = await Promise.all(pools.map((p) => migrate(p)));
      const applied = results.flatMap((r) => r.applied).sort((a, b) => a - b);
      expect(applied).toEqual(MIGRATIONS.map((m) => m.version));
      expect(results.every((r) => r.current === latest)).toBe(true);
    } finally {
      await Promise.all(pools.map((p) => p.end()));
    }
  });

  test('adopts an existing database of the original hub in place', async ({ database }) => {
    const pool = poolFor(database);
    try {
      // The original created its tables itself, with no version table.
      await pool.query(`CREATE TABLE licenses (licenseKey VARCHAR(64) PRIMARY KEY, tier VARCHAR(8) DEFAULT 'free',
        githubUsername VARCHAR(255), platforms TEXT, createdAt BIGINT, notes TEXT, account_id VARCHAR(36) NULL,
        device_bound BOOLEAN DEFAULT FALSE, project_bundle_id VARCHAR(255) NULL)`);
      await pool.query("INSERT INTO licenses (licenseKey, tier, platforms) VALUES ('PRO-AAAA-BBBB-CCCC', 'pro', '[]')");
      await migrate(pool);
      const [rows] = await pool.query<RowDataPacket[]>('SELECT licenseKey, tier FROM licenses');
      expect(rows.map((r) => ({ ...r }))).toEqual([{ licenseKey: 'PRO-AAAA-BBBB-CCCC', tier: 'pro' }]);
    } finally {
      await pool.end();
    }
  });
});
