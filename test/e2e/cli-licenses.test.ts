// `perry-hub licenses` against a real hub: register, create an account, upgrade it, list them.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect } from 'vitest';
import { ensureNkeySeeds } from '@perry-hub/localstack';
import { test } from '@perry-hub/testkit';
import { ensureBuilt } from '../support/hub-process.js';
import { ADMIN_SECRET, startTestHub } from '../support/test-hub.js';
import { runCli } from './cli-support.js';

beforeAll(() => ensureBuilt());

describe('perry-hub licenses', () => {
  test(
    'register, create, upgrade and list; the admin secret is required',
    { timeout: 120_000 },
    async ({ natsUrl, prefix, database }) => {
      const hub = await startTestHub({ natsUrl, prefix, database });
      try {
        const env = { PERRY_HUB_SERVER: hub.url, PERRY_HUB_ADMIN_SECRET: ADMIN_SECRET };
        const registered = await runCli(['licenses', 'register', '--github-username', 'octo', '--json'], {
          PERRY_HUB_SERVER: hub.url,
        });
        expect(registered.code).toBe(0);
        const license = JSON.parse(registered.stdout) as { license_key: string; tier: string };
        expect(license).toMatchObject({ tier: 'free' });

        const created = await runCli(
          ['licenses', 'create', '--github-id', '4711', '--github-username', 'octo-pro', '--tier', 'pro', '--json'],
          env,
        );
        expect(created.code).toBe(0);
        const account = JSON.parse(created.stdout) as { id: string; api_token: string; tier: string; created: boolean };
        expect(account).toMatchObject({ tier: 'pro', created: true });
        expect(account.api_token).toMatch(/^[0-9a-f]{64}$/);
        // The token works: its account answers with the pro tier.
        const me = await fetch(`${hub.url}/api/v1/account`, {
          headers: { authorization: `Bearer ${account.api_token}` },
        });
        expect(((await me.json()) as { tier: string }).tier).toBe('pro');

        const down = await runCli(['licenses', 'upgrade', account.id, '--tier', 'free'], env);
        expect(down.code).toBe(0);
        expect(down.stdout).toBe(`Account ${account.id} is now free\n`);

        const list = await runCli(['licenses', 'list', '--json'], env);
        expect(list.code).toBe(0);
        const listed = JSON.parse(list.stdout) as {
          period: string;
          licenses: { license_key: string; github_username: string }[];
        };
        expect(listed.period).toMatch(/^\d{4}-\d{2}$/);
        expect(listed.licenses).toEqual(
          expect.arrayContaining([
            expect.objectContaining({ license_key: license.license_key, github_username: 'octo' }),
          ]),
        );
        const human = await runCli(['licenses', 'list'], env);
        expect(human.stdout).toMatch(new RegExp(`${license.license_key}\\s+free\\s+octo`));

        const noSecret = await runCli(['licenses', 'list'], { PERRY_HUB_SERVER: hub.url });
        expect(noSecret.code).toBe(2);
        expect(noSecret.stderr).toContain('PERRY_HUB_ADMIN_SECRET');
        const wrong = await runCli(['licenses', 'list'], { PERRY_HUB_SERVER: hub.url, PERRY_HUB_ADMIN_SECRET: 'nope' });
        expect(wrong.code).toBe(3);
        expect(wrong.stderr).toMatch(/the hub refused GET \/api\/v1\/admin\/licenses: 40[13]/);
        const badTier = await runCli(['licenses', 'upgrade', account.id, '--tier', 'gold'], env);
        expect(badTier.code).toBe(2);
        // On the hub's machine the admin commands, nats-config --server included, read the
        // all-in-one's secrets file when no admin secret is given.
        const dataDir = mkdtempSync(join(tmpdir(), 'perry-hub-cli-secrets-'));
        try {
          writeFileSync(join(dataDir, 'secrets.json'), JSON.stringify({ PERRY_HUB_ADMIN_SECRET: ADMIN_SECRET }));
          const seeds = join(dataDir, 'seeds');
          ensureNkeySeeds(seeds, ['ingest']);
          const local = { PERRY_HUB_SERVER: hub.url, PERRY_HUB_DATA_DIR: dataDir };
          const added = await runCli(['tools', 'add', 'cli-local', '--license', license.license_key, '--json'], local);
          expect(added.code).toBe(0);
          const tool = JSON.parse(added.stdout) as { nkey_public: string };
          const rendered = await runCli(['nats-config', '--server', hub.url], {
            ...local,
            PERRY_HUB_NATS_CREDENTIALS_DIR: seeds,
          });
          expect(rendered.stderr).toBe('');
          expect(rendered.code).toBe(0);
          expect(rendered.stdout).toContain(`nkey: "${tool.nkey_public}"`);
        } finally {
          rmSync(dataDir, { recursive: true, force: true });
        }
        // A refused request with a body is named by the method it was sent with.
        const badTool = await runCli(['tools', 'add', 'cli-refused', '--license', 'no-such-license'], env);
        expect(badTool.code).toBe(3);
        expect(badTool.stderr).toMatch(/the hub refused POST \/api\/v1\/admin\/tools: 4\d\d /);
      } finally {
        await hub.stop();
      }
    },
  );
});
