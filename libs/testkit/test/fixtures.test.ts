import { createConnection, type RowDataPacket } from 'mysql2/promise';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestDatabase, describe, expect, test, uniquePrefix, type TestStack } from '../src/index.js';
import { connectTestNats } from '@perry-hub/testkit';

async function databasesOf(stack: TestStack): Promise<string[]> {
  const connection = await createConnection({ ...stack.db });
  try {
    const [rows] = await connection.query<RowDataPacket[]>('SHOW DATABASES');
    return rows.map((row) => String(row['Database']));
  } finally {
    await connection.end();
  }
}

describe('uniquePrefix', () => {
  test('is a valid subject token and database name, with or without a label', () => {
    const names = [uniquePrefix(), uniquePrefix('Orders API!'), uniquePrefix('x'.repeat(100))];
    for (const name of names) expect(name).toMatch(/^[a-z][a-z0-9_]{0,30}$/);
    expect(names[1]).toMatch(/^t_orders_api_[a-z0-9]{8}$/);
    expect(new Set(Array.from({ length: 1000 }, () => uniquePrefix())).size).toBe(1000);
  });
});

describe('fixtures', () => {
  const seen: { prefix: string; database: string }[] = [];

  test('first test gets a prefix and a database of its own', async ({ prefix, database, natsUrl }) => {
    seen.push({ prefix, database: database.database });
    const nc = await connectTestNats(natsUrl);
    try {
      const sub = nc.subscribe(`${prefix}.ping`, { max: 1 });
      nc.publish(`${prefix}.ping`, 'hello');
      for await (const msg of sub) expect(msg.string()).toBe('hello');
    } finally {
      await nc.close();
    }
    const connection = await createConnection({ ...database });
    try {
      await connection.query('CREATE TABLE t (id INT PRIMARY KEY)');
      const [rows] = await connection.query<RowDataPacket[]>('SELECT DATABASE() AS db');
      expect(rows[0]).toEqual({ db: database.database });
    } finally {
      await connection.end();
    }
  });

  test('second test gets different ones', ({ prefix, database }) => {
    seen.push({ prefix, database: database.database });
    const [first, second] = seen;
    expect(first && second).toBeTruthy();
    expect(second!.prefix).not.toBe(first!.prefix);
    expect(second!.database).not.toBe(first!.database);
  });

  test('their databases were dropped when they ended', async ({ stack }) => {
    expect(seen).toHaveLength(2);
    const existing = await databasesOf(stack);
    for (const { database } of seen) expect(existing).not.toContain(database);
  });

  test('the stack lives in a temp dir of this process and is shared', async ({ stack }) => {
    expect(stack.natsServer.storeDir.startsWith(join(tmpdir(), `perry-hub-test-${process.pid}-`))).toBe(true);
    expect(stack.natsUrl).toBe(stack.natsServer.url);
    const labelled = await createTestDatabase('Billing');
    expect(labelled.database).toMatch(/^t_billing_[a-z0-9]{8}$/);
    expect(labelled).toMatchObject({ host: stack.db.host, port: stack.db.port, user: 'root' });
    // Spreading it must give a clean mysql2 config.
    expect(Object.keys(labelled).sort()).toEqual(['database', 'host', 'password', 'port', 'user']);
    await Promise.all([labelled.drop(), labelled.drop()]);
    expect(await databasesOf(stack)).not.toContain(labelled.database);
  });
});
