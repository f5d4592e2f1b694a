// The delivery's own guard, at connect time: an address the submission check let through (a name
// that resolves differently later, or a row written before the allow-list changed) is refused by
// the agent and recorded as failed, without a request reaching it; a redirect is not followed.
import { createServer, type Server } from 'node:http';
import { describe, expect } from 'vitest';
import { dbOptions, migrate, openPool, type Pool, type RowDataPacket } from '@perry-hub/db';
import { getFreePort } from '@perry-hub/localstack';
import { AddressList, type BlobStore } from '@perry-hub/runtime';
import { test } from '@perry-hub/testkit';
import { pino } from 'pino';
import { CallbackSender } from '../src/callbacks/deliver.js';

const CONFIG = { maxAttempts: 3, backoffBaseMs: 50, backoffMaxMs: 100, timeoutMs: 2_000 };

async function queue(db: Pool, id: string, url: string, seq: number): Promise<void> {
  await db.query(
    `INSERT INTO callback_deliveries (id, job_id, seq, kind, url, tool, event_type, body, state, attempts, next_attempt_at, created_at)
     VALUES (?, 'job-1', ?, 'event', ?, 'hone', 'build.failed', '{"type":"build.failed"}', 'pending', 0, 0, 0)`,
    [id, seq, url],
  );
}

async function until(check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('callback delivery guard', () => {
  test('connect-time refusal is recorded as failed; a redirect is an answer, not followed', async ({ database }) => {
    const db = openPool(dbOptions(database, 2));
    await migrate(db);
    await db.query(
      `INSERT INTO tools (name, nkey_public, webhook_secret, created_at) VALUES ('hone', 'U', 'whsec_c2VjcmV0c2VjcmV0c2VjcmV0', 0)`,
    );
    const hits: string[] = [];
    const port = await getFreePort();
    const server: Server = createServer((req, res) => {
      hits.push(req.url ?? '');
      if (req.url === '/moved') res.writeHead(302, { location: `http://127.0.0.1:${port}/target` }).end();
      else res.writeHead(204).end();
    });
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    const sender = (allowed: string[]) =>
      new CallbackSender({
        db,
        blobs: undefined as unknown as BlobStore,
        log: pino({ level: 'silent' }),
        policy: { allowedAddresses: AddressList.parse(allowed.join(',')) },
        config: CONFIG,
      });
    try {
      // Not allow-listed: refused by the agent before connecting, failed at once.
      await queue(db, 'msg_refused', `http://127.0.0.1:${port}/refused`, 0);
      const strict = sender([]);
      strict.wake();
      const row = async (id: string) =>
        (await db.query<RowDataPacket[]>('SELECT * FROM callback_deliveries WHERE id = ?', [id]))[0][0]!;
      await until(async () => (await row('msg_refused'))['state'] !== 'pending');
      await strict.stop();
      expect(await row('msg_refused')).toMatchObject({ state: 'failed', attempts: 1 });
      expect(String((await row('msg_refused'))['last_error'])).toMatch(/not allowed/);
      expect(hits).toEqual([]);

      // Allowed: a 302 is not followed; retried, then given up after the attempts.
      await db.query("UPDATE callback_deliveries SET job_id = 'job-0' WHERE id = 'msg_refused'");
      await queue(db, 'msg_moved', `http://127.0.0.1:${port}/moved`, 1);
      const loose = sender(['127.0.0.1']);
      loose.wake();
      await until(async () => (await row('msg_moved'))['state'] !== 'pending');
      await loose.stop();
      expect(await row('msg_moved')).toMatchObject({ state: 'failed', attempts: 3, last_status: 302 });
      expect(hits).toEqual(['/moved', '/moved', '/moved']);
    } finally {
      server.close();
      await db.end();
    }
  });
});
