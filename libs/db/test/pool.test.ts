import { describe, expect } from 'vitest';
import { startIsolatedMariaDb, test } from '@perry-hub/testkit';
import { dbOptions, failingFast, openPool, type RowDataPacket } from '../src/index.js';

describe('pool', () => {
  test('a statement waits for a restarting MySQL instead of failing; failingFast does not wait', async () => {
    let mariadb = await startIsolatedMariaDb();
    const pool = openPool(
      dbOptions({ host: '127.0.0.1', port: mariadb.port, user: 'root', password: '', database: 'mysql' }, 2),
    );
    try {
      await pool.query('SELECT 1');
      process.kill(mariadb.pid, 'SIGKILL');
      await mariadb.exited;

      // Down: the unwaiting view of the same pool is refused at once.
      await expect(failingFast(pool).query('SELECT 1')).rejects.toThrow();
      // The pool's own statement is sent once MySQL is back, a few seconds later.
      const waiting = pool.query<RowDataPacket[]>('SELECT 41 + 1 AS answer');
      let settled = false;
      void waiting.then(
        () => (settled = true),
        () => (settled = true),
      );
      await new Promise((r) => setTimeout(r, 1_500));
      expect(settled).toBe(false);
      mariadb = await mariadb.restart();
      const [rows] = await waiting;
      expect(rows[0]!['answer']).toBe(42);
    } finally {
      await pool.end();
    }
  });
});
