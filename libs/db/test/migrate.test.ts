import { randomBytes } from 'node:crypto';
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

  test('installs the stored procedures, and migrates without them for a user who may not create routines', async ({
    database,
  }) => {
    const routines = async (p: Pool) =>
      (
        await p.query<RowDataPacket[]>(
          'SELECT ROUTINE_NAME AS name FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = DATABASE() ORDER BY name',
        )
      )[0].map((r) => String(r['name']));
    const pool = poolFor(database);
    const user = `m${randomBytes(4).toString('hex')}`;
    try {
      await migrate(pool);
      expect(await routines(pool)).toEqual(['perry_authorize_submission', 'perry_settle_publish']);
      // Another database, migrated by a user with table privileges only.
      await pool.query(`CREATE DATABASE \`${database.database}_lim\``);
      await pool.query(`CREATE USER '${user}'@'%' IDENTIFIED BY 'pw'`);
      await pool.query(
        `GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, INDEX, DROP ON \`${database.database}_lim\`.* TO '${user}'@'%'`,
      );
      const other = openPool(dbOptions({ ...database, database: `${database.database}_lim`, user, password: 'pw' }, 1));
      try {
        expect((await migrate(other)).current).toBe(latest);
        expect(await routines(other)).toEqual([]);
      } finally {
        await other.end();
      }
    } finally {
      await pool.query(`DROP DATABASE IF EXISTS \`${database.database}_lim\``).catch(() => undefined);
      await pool.query(`DROP USER IF EXISTS '${user}'@'%'`).catch(() => undefined);
      await pool.end();
    }
  });
});
