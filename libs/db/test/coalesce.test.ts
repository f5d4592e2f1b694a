// Coalesced bookkeeping writes: keys added together go out in one statement; a failed write
// keeps its keys for the next one.
import { describe, expect } from 'vitest';
import { test, until } from '@perry-hub/testkit';
import { CoalescedUpdate, dbOptions, openPool, type RowDataPacket } from '../src/index.js';

describe('CoalescedUpdate', () => {
  test('writes the keys added together in one statement, and keeps them when a write fails', async ({ database }) => {
    const pool = openPool(dbOptions(database, 2));
    try {
      await pool.query('CREATE TABLE marks (id VARCHAR(8) PRIMARY KEY, marked BIGINT NULL)');
      await pool.query("INSERT INTO marks (id) VALUES ('a'), ('b'), ('c'), ('d')");
      let table = 'marks';
      const statements: string[][] = [];
      const marks = new CoalescedUpdate(
        pool,
        (ids, now) => {
          statements.push(ids);
          return [`UPDATE ${table} SET marked = ? WHERE id IN (?)`, [now, ids]];
        },
        { delayMs: 20, maxKeys: 3 },
      );
      const marked = async () =>
        (await pool.query<RowDataPacket[]>('SELECT id FROM marks WHERE marked IS NOT NULL ORDER BY id'))[0].map(
          (r) => r['id'] as string,
        );

      marks.add('a');
      marks.add('b');
      await until('the first two marked', async () => (await marked()).length === 2);
      expect(statements).toEqual([['a', 'b']]);

      // A failed write: its keys wait, and go with the next one.
      table = 'missing';
      marks.add('c');
      await expect(marks.flush()).rejects.toThrow();
      expect(marks.size).toBe(1);
      table = 'marks';
      marks.add('d');
      await marks.flush();
      expect(await marked()).toEqual(['a', 'b', 'c', 'd']);
      expect(statements.at(-1)).toEqual(['c', 'd']);
    } finally {
      await pool.end();
    }
  });
});
