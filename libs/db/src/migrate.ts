/**
 * Versioned migrations, safe when several processes start at once: a named MySQL lock
 * serialises them, and the version table says what is already applied.
 */
import type { Pool, PoolConnection, RowDataPacket } from 'mysql2/promise';
import { MIGRATIONS, type Migration } from './migrations/index.js';
import { runStep } from './migrations/steps.js';

const LOCK_NAME = 'perry_hub_migrations';
const LOCK_TIMEOUT_S = 120;

export interface MigrationResult {
  applied: number[];
  current: number;
}

export class MigrationError extends Error {
  override readonly name = 'MigrationError';
  readonly code = 'MIGRATION_FAILED';
}

export async function migrate(pool: Pool, migrations: readonly Migration[] = MIGRATIONS): Promise<MigrationResult> {
  const conn = await pool.getConnection();
  try {
    // The lock name is per database so tests sharing a server do not serialise each other.
    const [dbRows] = await conn.query<RowDataPacket[]>('SELECT DATABASE() AS db');
    const lock = `${LOCK_NAME}:${String(dbRows[0]?.['db'])}`;
    const [lockRows] = await conn.query<RowDataPacket[]>('SELECT GET_LOCK(?, ?) AS got', [lock, LOCK_TIMEOUT_S]);
    if (lockRows[0]?.['got'] !== 1) {
      throw new MigrationError(`Timed out after ${LOCK_TIMEOUT_S}s waiting for the migration lock`);
    }
    try {
      return await applyPending(conn, migrations);
    } finally {
      await conn.query('SELECT RELEASE_LOCK(?)', [lock]);
    }
  } finally {
    conn.release();
  }
}

async function applyPending(conn: PoolConnection, migrations: readonly Migration[]): Promise<MigrationResult> {
  await conn.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
    version INT NOT NULL PRIMARY KEY,
    name VARCHAR(255) NOT NULL,
    applied_at BIGINT NOT NULL
  ) ENGINE=InnoDB`);
  const [rows] = await conn.query<RowDataPacket[]>('SELECT version FROM schema_migrations');
  const done = new Set(rows.map((r) => Number(r['version'])));
  const applied: number[] = [];
  for (const m of migrations) {
    if (done.has(m.version)) continue;
    for (const step of m.statements) {
      try {
        await runStep(conn, step);
      } catch (err) {
        throw new MigrationError(`Migration ${m.version} (${m.name}) failed: ${(err as Error).message}`, {
          cause: err,
        });
      }
    }
    await conn.query('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)', [
      m.version,
      m.name,
      Date.now(),
    ]);
    applied.push(m.version);
  }
  const current = Math.max(0, ...migrations.map((m) => m.version).filter((v) => done.has(v) || applied.includes(v)));
  return { applied, current };
}
