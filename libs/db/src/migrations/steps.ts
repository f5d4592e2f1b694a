/**
 * Migration steps. Plain SQL must be idempotent by itself (`CREATE TABLE IF NOT EXISTS`);
 * column and index additions are checked against information_schema first, because MySQL 8 has
 * no `ADD COLUMN IF NOT EXISTS` (MariaDB has) and both must be able to host the hub.
 */
import type { PoolConnection, RowDataPacket } from 'mysql2/promise';

export type MigrationStep =
  | string
  | { addColumn: { table: string; column: string; definition: string } }
  | { addIndex: { table: string; index: string; definition: string; unique?: boolean } }
  /**
   * A stored routine that the hub can do without (its code falls back on its own statements when
   * the routine is missing): a user without `CREATE ROUTINE` still gets a working hub.
   */
  | { optionalRoutine: string };

/** Access denied (to the database, a table, a privilege, a routine). */
const DENIED = new Set([1044, 1142, 1227, 1370]);

async function exists(conn: PoolConnection, sql: string, params: unknown[]): Promise<boolean> {
  const [rows] = await conn.query<RowDataPacket[]>(sql, params);
  return Number(rows[0]?.['n'] ?? 0) > 0;
}

export async function runStep(conn: PoolConnection, step: MigrationStep): Promise<void> {
  if (typeof step === 'string') {
    await conn.query(step);
    return;
  }
  if ('optionalRoutine' in step) {
    try {
      await conn.query(step.optionalRoutine);
    } catch (err) {
      if (!DENIED.has((err as { errno?: number }).errno ?? 0)) throw err;
    }
    return;
  }
  if ('addColumn' in step) {
    const { table, column, definition } = step.addColumn;
    const present = await exists(
      conn,
      'SELECT COUNT(*) AS n FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND COLUMN_NAME = ?',
      [table, column],
    );
    if (!present) await conn.query(`ALTER TABLE \`${table}\` ADD COLUMN \`${column}\` ${definition}`);
    return;
  }
  const { table, index, definition, unique } = step.addIndex;
  const present = await exists(
    conn,
    'SELECT COUNT(*) AS n FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND INDEX_NAME = ?',
    [table, index],
  );
  if (!present)
    await conn.query(`ALTER TABLE \`${table}\` ADD ${unique ? 'UNIQUE ' : ''}INDEX \`${index}\` ${definition}`);
}
