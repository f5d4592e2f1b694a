// The all-in-one works unconfigured: it generates an admin secret and a credentials key, keeps
// them in its data directory (0600) for the next start, and shows the admin secret once.
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { startHub } from '@perry-hub/cli';
import { parseSealKeys } from '@perry-hub/runtime';
import { createTestDatabase, getTestStack, uniquePrefix, testNatsCredentialsDir } from '@perry-hub/testkit';
import { send } from './support/perry-publish.js';

describe('perry-hub start without secrets configured', () => {
  it('generates, keeps and reuses them', { timeout: 120_000 }, async () => {
    const stack = await getTestStack();
    const database = await createTestDatabase('secrets');
    const dataDir = mkdtempSync(join(tmpdir(), 'perry-hub-secrets-'));
    const env = {
      PERRY_HUB_DATA_DIR: dataDir,
      PERRY_HUB_NATS_URL: stack.natsUrl,
      PERRY_HUB_NATS_CREDENTIALS_DIR: testNatsCredentialsDir(),
      PERRY_HUB_SUBJECT_PREFIX: uniquePrefix('secrets'),
      PERRY_DB_HOST: database.host,
      PERRY_DB_PORT: String(database.port),
      PERRY_DB_USER: database.user,
      PERRY_DB_PASSWORD: database.password,
      PERRY_DB_NAME: database.database,
      PERRY_HUB_HTTP_PORT: '0',
      PERRY_HUB_HTTP_HOST: '127.0.0.1',
    };
    const log = pino({ level: 'silent' });
    try {
      const first = await startHub({ services: [], env, log });
      const file = join(dataDir, 'secrets.json');
      const saved = JSON.parse(readFileSync(file, 'utf8')) as Record<string, string>;
      let url: string;
      try {
        expect(statSync(file).mode & 0o777).toBe(0o600);
        expect(saved['PERRY_HUB_ADMIN_SECRET']).toMatch(/^[A-Za-z0-9_-]{43}$/);
        expect(parseSealKeys(saved['PERRY_HUB_CREDENTIALS_KEY']!)).toHaveLength(1);
        expect(first.notices).toEqual([
          `  Admin secret (generated, kept in ${file}): ${saved['PERRY_HUB_ADMIN_SECRET']}`,
        ]);
        url = `http://127.0.0.1:${String(first.services.find((s) => s.name === 'ingest')!.info['httpPort'])}`;
        const admin = await send(`${url}/api/v1/account/create`, {
          headers: {
            'content-type': 'application/json',
            authorization: `Bearer ${saved['PERRY_HUB_ADMIN_SECRET']}`,
          },
          body: Buffer.from('{"github_id":"1","github_username":"one"}'),
        });
        expect(admin.status).toBe(200);
      } finally {
        await first.stop();
      }

      // The next start reuses them and does not show the secret again.
      const second = await startHub({ services: [], env, log });
      try {
        expect(second.notices).toEqual([]);
        expect(second.env['PERRY_HUB_ADMIN_SECRET']).toBe(saved['PERRY_HUB_ADMIN_SECRET']);
        expect(second.env['PERRY_HUB_CREDENTIALS_KEY']).toBe(saved['PERRY_HUB_CREDENTIALS_KEY']);
      } finally {
        await second.stop();
      }
      // Configured values win and are not written down.
      const third = await startHub({ services: [], env: { ...env, PERRY_HUB_ADMIN_SECRET: 'configured' }, log });
      try {
        expect(third.env['PERRY_HUB_ADMIN_SECRET']).toBe('configured');
        expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual(saved);
      } finally {
        await third.stop();
      }
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
      await database.drop();
    }
  });
});
