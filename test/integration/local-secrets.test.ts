// The all-in-one works unconfigured but not open: it generates an admin secret, a worker secret
// and a credentials key, keeps them in its data directory (0600) for the next start, shows the
// admin and worker secrets once, requires the worker secret, and never logs any of them.
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { startHub } from '@perry-hub/cli';
import { getFreePort } from '@perry-hub/localstack';
import { parseSealKeys } from '@perry-hub/runtime';
import { createTestDatabase, getTestStack, testNatsCredentialsDir, uniquePrefix } from '@perry-hub/testkit';
import { perryPublish } from '../support/perry-cli.js';
import { expectedArtifact } from '../support/rust-worker-jobs.js';
import { linuxWorker, type SimulatedWorker } from '../support/rust-workers.js';
import { CREDENTIALS, MANIFEST, tarball } from '../support/test-hub.js';
import { send } from './support/perry-publish.js';
import { until } from '@perry-hub/testkit';

const AUTH_FAILED = '{"type":"error","code":"AUTH_FAILED","message":"Invalid worker secret"}';

describe('perry-hub start without secrets configured', () => {
  it(
    'generates, keeps and reuses them; the worker secret is required; none is logged',
    { timeout: 120_000 },
    async () => {
      const stack = await getTestStack();
      const database = await createTestDatabase('secrets');
      const dataDir = mkdtempSync(join(tmpdir(), 'perry-hub-secrets-'));
      const httpPort = await getFreePort();
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
        PERRY_HUB_HTTP_PORT: String(httpPort),
        PERRY_HUB_HTTP_HOST: '127.0.0.1',
        PERRY_HUB_WS_PORT: '0',
        PERRY_HUB_WS_HOST: '127.0.0.1',
        PERRY_HUB_PUBLIC_URL: `http://127.0.0.1:${httpPort}`,
        PERRY_HUB_VM_PROVIDER: 'none',
      };
      // Everything the hub logs, down to debug, to be searched for the secrets afterwards.
      const logged: string[] = [];
      const log = pino({ level: 'debug' }, { write: (line: string) => void logged.push(line) });
      const workers: SimulatedWorker[] = [];
      try {
        const first = await startHub({ services: [], env, log });
        const file = join(dataDir, 'secrets.json');
        const saved = JSON.parse(readFileSync(file, 'utf8')) as Record<string, string>;
        let url: string;
        try {
          expect(statSync(file).mode & 0o777).toBe(0o600);
          expect(saved['PERRY_HUB_ADMIN_SECRET']).toMatch(/^[A-Za-z0-9_-]{43}$/);
          expect(parseSealKeys(saved['PERRY_HUB_CREDENTIALS_KEY']!)).toHaveLength(1);
          expect(saved['PERRY_HUB_WORKER_SECRET']).toMatch(/^[A-Za-z0-9_-]{43}$/);
          expect(first.notices).toEqual([
            `  Admin secret (generated, kept in ${file}): ${saved['PERRY_HUB_ADMIN_SECRET']}`,
            `  Worker secret for PERRY_HUB_WORKER_SECRET (generated, kept in ${file}): ${saved['PERRY_HUB_WORKER_SECRET']}`,
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

          // A worker without the generated secret (or with another) is refused, as used to be possible.
          const wsPort = String(first.services.find((s) => s.name === 'worker-gateway')!.info['wsPort']);
          const workerUrl = `ws://127.0.0.1:${wsPort}`;
          for (const secret of [undefined, 'guessed']) {
            const intruder = linuxWorker({
              url: workerUrl,
              name: 'intruder',
              reconnectDelayMs: 60_000,
              ...(secret ? { secret } : {}),
            });
            workers.push(intruder);
            await until('the refusal', () => intruder.received.includes(AUTH_FAILED));
          }
          // With it, a worker builds; then the log is searched for every generated secret.
          const worker = linuxWorker({
            url: workerUrl,
            name: 'kamatera-fra',
            secret: saved['PERRY_HUB_WORKER_SECRET']!,
          });
          workers.push(worker);
          await worker.connected();
          const license = await send(`${url}/api/v1/license/register`, {
            headers: { 'content-type': 'application/json' },
            body: Buffer.from('{}'),
          });
          const input = tarball('secrets');
          const result = await perryPublish({
            server: url,
            manifest: { ...MANIFEST, targets: ['linux'] },
            credentials: CREDENTIALS,
            tarball: input,
            licenseKey: (JSON.parse(license.body) as { license_key: string }).license_key,
            timeoutMs: 30_000,
          });
          expect(result.reason).toBe('Ready');
          expect(result.artifact?.bytes).toEqual(expectedArtifact('linux', 'linux', input));
          expect(worker.received.filter((f) => f.startsWith('{"type":"job_assign"'))).toHaveLength(1);
        } finally {
          for (const w of workers) await w.stop();
          await first.stop();
        }
        const output = logged.join('');
        expect(logged.length).toBeGreaterThan(10); // the search below looked at real output
        expect(output).toContain('job assigned');
        for (const name of ['PERRY_HUB_ADMIN_SECRET', 'PERRY_HUB_WORKER_SECRET', 'PERRY_HUB_CREDENTIALS_KEY']) {
          expect(output.includes(saved[name]!), `${name} in the log`).toBe(false);
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
    },
  );
});
