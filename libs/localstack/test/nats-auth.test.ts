import { spawnSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { nkeyAuthenticator } from '@nats-io/nats-core';
import { connect } from '@nats-io/transport-node';
import { afterAll, describe, expect, it } from 'vitest';
import {
  assertSafeNatsConfig,
  ensureNkeySeeds,
  findBinary,
  isLocalStackError,
  renderNatsAccounts,
  startNatsServer,
  type NatsServer,
} from '../src/index.js';
import { makeTempDir } from './support/helpers.js';

const temp = makeTempDir('nats-auth');
const started: NatsServer[] = [];
afterAll(async () => {
  await Promise.all(started.map((server) => server.stop()));
  temp.remove();
});

const seedOf = (dir: string, name: string) =>
  new TextEncoder().encode(readFileSync(join(dir, `${name}.nk`), 'utf8').trim());

describe('nats-server with users', () => {
  it('admits only its users, each within its permissions, with sync_interval: always', async () => {
    const creds = join(temp.dir, 'creds');
    const keys = ensureNkeySeeds(creds, ['svc', 'admin']);
    expect(statSync(join(creds, 'svc.nk')).mode & 0o777).toBe(0o600);
    // Kept, not regenerated: a restart must not lock out running services.
    expect(ensureNkeySeeds(creds, ['svc']).get('svc')).toBe(keys.get('svc'));
    const server = await startNatsServer({
      dataDir: join(temp.dir, 'a'),
      logFile: join(temp.dir, 'a.log'),
      syncAlways: true,
      users: [
        {
          nkey: keys.get('svc')!,
          permissions: { publish: ['ok.>'], subscribe: ['_INBOX.>'], allowResponses: false },
        },
        { nkey: keys.get('admin')! },
      ],
    });
    started.push(server);
    const conf = join(temp.dir, 'a', 'nats.conf');
    const text = readFileSync(conf, 'utf8');
    expect(text).toContain('sync_interval: always');
    expect(text).not.toMatch(/^authorization/m);
    expect(statSync(conf).mode & 0o777).toBe(0o600);
    // The server's own syntax check agrees.
    const check = spawnSync(findBinary('nats-server'), ['-t', '-c', conf], { encoding: 'utf8' });
    expect(check.status, check.stderr).toBe(0);

    await expect(connect({ servers: server.url, reconnect: false })).rejects.toThrow(/Authorization/i);
    const admin = await connect({ servers: server.url, authenticator: nkeyAuthenticator(seedOf(creds, 'admin')) });
    const svc = await connect({ servers: server.url, authenticator: nkeyAuthenticator(seedOf(creds, 'svc')) });
    try {
      const info = await admin.request('$JS.API.INFO', '', { timeout: 5_000 });
      expect(info.json<{ error?: unknown }>().error).toBeUndefined();
      await expect(svc.request('$JS.API.INFO', '', { timeout: 1_000 })).rejects.toThrow(/Permissions Violation/i);
    } finally {
      await Promise.all([admin.close(), svc.close()]);
    }
  });
});

describe('assertSafeNatsConfig', () => {
  it('refuses a top-level authorization block beside accounts', () => {
    const unsafe = 'authorization { user: a, password: b }\naccounts { A: { users: [{ user: c, password: d }] } }\n';
    expect(() => assertSafeNatsConfig(unsafe)).toThrow(/authorization/);
    try {
      assertSafeNatsConfig(unsafe);
    } catch (err) {
      expect(isLocalStackError(err, 'UNSAFE_CONFIG')).toBe(true);
    }
    expect(() => assertSafeNatsConfig(`accounts: {}\n  authorization = {\n users = [] }`)).toThrow();
  });

  it('accepts accounts alone, and the word in comments, strings or nested blocks', () => {
    expect(() => assertSafeNatsConfig(renderNatsAccounts([{ nkey: 'UABC' }]))).not.toThrow();
    const tricky = [
      '# authorization { user: a }',
      'server_name: "authorization"',
      'leafnodes { authorization { user: x, password: y } }',
      'accounts { A: { users: [] } }',
    ].join('\n');
    expect(() => assertSafeNatsConfig(tricky)).not.toThrow();
    expect(() => assertSafeNatsConfig('authorization { user: a, password: b }\n')).not.toThrow();
  });
});
