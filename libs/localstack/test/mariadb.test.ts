import { createConnection, type RowDataPacket } from 'mysql2/promise';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startMariaDb, type MariaDbServer } from '../src/index.js';
import { isGone, makeTempDir } from './support/helpers.js';

const temp = makeTempDir('mariadb');
const started: MariaDbServer[] = [];
afterAll(async () => {
  await Promise.all(started.map((server) => server.stop()));
  temp.remove();
});

describe('startMariaDb', () => {
  it('initializes a fresh data dir, answers SELECT 1 as root, and stops idempotently', async () => {
    const server = await startMariaDb({ dataDir: join(temp.dir, 'db'), logFile: join(temp.dir, 'db.log') });
    started.push(server);
    expect(server).toMatchObject({ host: '127.0.0.1', user: 'root', password: '', dataDir: join(temp.dir, 'db') });
    const connection = await createConnection({
      host: server.host,
      port: server.port,
      user: server.user,
      password: server.password,
    });
    try {
      const [rows] = await connection.query<RowDataPacket[]>('SELECT 1 AS one, @@character_set_server AS charset');
      expect(rows[0]).toEqual({ one: 1, charset: 'utf8mb4' });
    } finally {
      await connection.end();
    }
    await Promise.all([server.stop(), server.stop()]);
    expect(isGone(server.pid)).toBe(true);
    await server.stop();
  });

  it('recovers from a first init that was interrupted', async () => {
    // What a crash mid-install can leave: a half-written scratch dir, files moved in without mysql/.
    const dataDir = join(temp.dir, 'interrupted');
    mkdirSync(join(`${dataDir}.init-tmp`, 'mysql'), { recursive: true });
    mkdirSync(join(dataDir, 'sys'), { recursive: true });
    writeFileSync(join(dataDir, 'ibdata1'), 'torn');
    const server = await startMariaDb({ dataDir, logFile: join(temp.dir, 'interrupted.log'), durable: false });
    started.push(server);
    const connection = await createConnection({ host: server.host, port: server.port, user: 'root' });
    try {
      const [rows] = await connection.query<RowDataPacket[]>('SELECT @@innodb_flush_log_at_trx_commit AS flush');
      expect(rows[0]).toEqual({ flush: 2 });
    } finally {
      await connection.end();
    }
  });

  it('initializes six fresh data dirs at once (parallel test workers do)', { timeout: 120_000 }, async () => {
    // Sharing /tmp, about one in six concurrent installs aborted ("Unknown table
    // 'mysql.tmp_user_sys'"): each server now has a temp dir of its own.
    const servers = await Promise.allSettled(
      Array.from({ length: 6 }, (_, i) =>
        startMariaDb({
          dataDir: join(temp.dir, `many-${i}`),
          logFile: join(temp.dir, `many-${i}.log`),
          durable: false,
        }),
      ),
    );
    for (const s of servers) if (s.status === 'fulfilled') started.push(s.value);
    expect(
      servers.filter((s) => s.status === 'rejected').map((s) => String((s as PromiseRejectedResult).reason)),
    ).toEqual([]);
  });
});
