/** Transactions with a retry on deadlock: every counter decision is one transaction. */
import type { Pool, PoolConnection } from '@perry-hub/db';

const DEADLOCK = 1213;
const LOCK_WAIT_TIMEOUT = 1205;
const ATTEMPTS = 4;

export async function inTransaction<T>(db: Pool, work: (conn: PoolConnection) => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    const conn = await db.getConnection();
    try {
      await conn.beginTransaction();
      const result = await work(conn);
      await conn.commit();
      return result;
    } catch (err) {
      await conn.rollback().catch(() => undefined);
      const errno = (err as { errno?: number }).errno;
      if ((errno === DEADLOCK || errno === LOCK_WAIT_TIMEOUT) && attempt < ATTEMPTS) continue;
      throw err;
    } finally {
      conn.release();
    }
  }
}

export function isDuplicateKey(err: unknown): boolean {
  return (err as { errno?: number }).errno === 1062;
}
