import { createConnection } from 'mysql2/promise';
import { uniquePrefix } from './names.js';
import { getTestStack, type DbCredentials } from './stack.js';

/**
 * Connection options for one test's database. `drop` is not enumerable, so `{ ...database }` is a
 * clean mysql2 config (mysql2 warns about unknown options).
 */
export interface TestDatabase extends DbCredentials {
  database: string;
  /** Drops the database; idempotent. */
  drop(): Promise<void>;
}

async function admin(db: DbCredentials, statement: string): Promise<void> {
  const connection = await createConnection({ ...db });
  try {
    await connection.query(statement);
  } finally {
    await connection.end();
  }
}

/** A new empty database on the shared MariaDB, named like `uniquePrefix(label)`. */
export async function createTestDatabase(label?: string): Promise<TestDatabase> {
  const { db } = await getTestStack();
  // uniquePrefix only yields [a-z0-9_], so backquoting is enough.
  const database = uniquePrefix(label);
  await admin(db, `CREATE DATABASE \`${database}\` CHARACTER SET utf8mb4`);
  let dropped: Promise<void> | undefined;
  const drop = (): Promise<void> => (dropped ??= admin(db, `DROP DATABASE IF EXISTS \`${database}\``));
  return Object.defineProperty({ ...db, database }, 'drop', { value: drop, enumerable: false }) as TestDatabase;
}
