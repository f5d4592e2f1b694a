/**
 * Crash safety: the process that started the servers is SIGKILLed. Its servers must go away on
 * their own, and a start on the same data directories must work and find the earlier data.
 */
import { connect } from '@nats-io/transport-node';
import { createConnection, type RowDataPacket } from 'mysql2/promise';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startMariaDb, startNatsServer, type ChildServer } from '../src/index.js';
import { isGone, makeTempDir, parentPid, startParent, waitGone } from './support/helpers.js';

const temp = makeTempDir('crash');
const started: ChildServer[] = [];
afterAll(async () => {
  await Promise.all(started.map((server) => server.stop()));
  temp.remove();
});

async function jsRequest(url: string, subject: string, body: unknown): Promise<Record<string, unknown>> {
  const nc = await connect({ servers: url });
  try {
    const reply = await nc.request(subject, body === undefined ? '' : JSON.stringify(body), { timeout: 5_000 });
    return reply.json<Record<string, unknown>>();
  } finally {
    await nc.close();
  }
}

async function sql(port: number, statement: string): Promise<RowDataPacket[]> {
  const connection = await createConnection({ host: '127.0.0.1', port, user: 'root', password: '' });
  try {
    const [rows] = await connection.query<RowDataPacket[]>(statement);
    return rows;
  } finally {
    await connection.end();
  }
}

describe('after the parent is SIGKILLed', () => {
  it('the servers exit, and a restart on the same data dirs keeps the data', async () => {
    const natsDir = join(temp.dir, 'a-nats');
    const dbDir = join(temp.dir, 'a-mariadb');
    const { child, handles } = await startParent(natsDir, dbDir, temp.dir);
    const db = handles.mariadb!;

    const created = await jsRequest(handles.nats.url, '$JS.API.STREAM.CREATE.ORDERS', {
      name: 'ORDERS',
      subjects: ['orders.>'],
      storage: 'file',
    });
    expect(created['error']).toBeUndefined();
    const ack = await jsRequest(handles.nats.url, 'orders.1', { id: 1 });
    expect(ack).toMatchObject({ stream: 'ORDERS', seq: 1 });
    await sql(db.port, 'CREATE DATABASE crashdb');
    await sql(db.port, 'CREATE TABLE crashdb.t (id INT PRIMARY KEY, v VARCHAR(20))');
    await sql(db.port, "INSERT INTO crashdb.t VALUES (1, 'kept')");

    child.kill('SIGKILL');
    expect(await waitGone([handles.nats.pid, db.pid], 10_000)).toBe(true);

    const nats = await startNatsServer({ dataDir: natsDir, logFile: join(temp.dir, 'nats.log') });
    started.push(nats);
    const mariadb = await startMariaDb({ dataDir: dbDir, logFile: join(temp.dir, 'mariadb.log') });
    started.push(mariadb);
    const info = await jsRequest(nats.url, '$JS.API.STREAM.INFO.ORDERS', undefined);
    expect(info).toMatchObject({ config: { name: 'ORDERS' }, state: { messages: 1 } });
    expect(await sql(mariadb.port, 'SELECT v FROM crashdb.t WHERE id = 1')).toEqual([{ v: 'kept' }]);
  });

  it('a server orphaned by a killed watchdog is stopped by the next start', async () => {
    const natsDir = join(temp.dir, 'b-nats');
    const dbDir = join(temp.dir, 'b-mariadb');
    const { child, handles } = await startParent(natsDir, dbDir, temp.dir);
    const serverPids = [handles.nats.pid, handles.mariadb!.pid];
    // Kill the watchdogs first so nothing is left to stop the servers when the parent dies.
    for (const pid of serverPids) process.kill(parentPid(pid), 'SIGKILL');
    child.kill('SIGKILL');
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(serverPids.some(isGone)).toBe(false);

    const [nats, mariadb] = await Promise.all([
      startNatsServer({ dataDir: natsDir, port: handles.nats.port }),
      startMariaDb({ dataDir: dbDir }),
    ]);
    started.push(nats, mariadb);
    expect(serverPids.every(isGone)).toBe(true);
    expect(nats.port).toBe(handles.nats.port);
    expect(await sql(mariadb.port, 'SELECT 1 AS one')).toEqual([{ one: 1 }]);
  });
});
