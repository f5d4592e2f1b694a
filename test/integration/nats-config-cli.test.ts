// `perry-hub nats-config`: what an operator pastes into nats-server's config, from the seed files
// of a deployment, and the check of a config someone wrote by hand.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { main } from '@perry-hub/cli';
import { natsPermissions } from '@perry-hub/contracts';
import { ensureNkeySeeds } from '@perry-hub/localstack';

const dir = mkdtempSync(join(tmpdir(), 'perry-hub-nats-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function run(argv: string[], env: Record<string, string> = {}): Promise<{ code: number; text: string }> {
  const out = new PassThrough();
  let text = '';
  out.on('data', (chunk: Buffer) => (text += chunk.toString()));
  const code = await main(argv, env, out);
  return { code, text };
}

describe('perry-hub nats-config', () => {
  it('prints public keys and derived permissions inside the HUB account, never a seed', async () => {
    const creds = join(dir, 'creds');
    const keys = ensureNkeySeeds(creds, ['ingest', 'scheduler', 'tool-ci']);
    const { code, text } = await run(['nats-config'], {
      PERRY_HUB_NATS_CREDENTIALS_DIR: creds,
      PERRY_HUB_SUBJECT_PREFIX: 'acme',
    });
    expect(code).toBe(0);
    for (const key of keys.values()) expect(text).toContain(`nkey: "${key}"`);
    expect(text).not.toMatch(/"SU[A-Z0-9]+"/);
    expect(text).toMatch(/accounts \{\n {2}HUB: \{\n {4}jetstream: enabled/);
    expect(text).not.toMatch(/^authorization/m);
    expect(text).toContain(JSON.stringify(natsPermissions('acme', { tool: 'ci' }).publish[0]));
    expect(text).toContain('"acme.svc.license.authorize-submission"');

    const file = join(dir, 'nats.conf');
    writeFileSync(file, `listen: "127.0.0.1:4222"\njetstream {}\n${text}`);
    expect(await run(['nats-config', '--check', file])).toEqual({ code: 0, text: `${file}: ok\n` });
  });

  it('refuses an authorization block beside accounts, and a bad credentials dir', async () => {
    const file = join(dir, 'unsafe.conf');
    writeFileSync(file, 'authorization { user: a, password: b }\naccounts { A: { users: [] } }\n');
    const unsafe = await run(['nats-config', '--check', file]);
    // Bad configuration, as the README's exit codes and the command's --help say.
    expect(unsafe.code).toBe(2);
    expect(unsafe.text).toMatch(/top-level authorization/);
    const unreadable = await run(['nats-config', '--check', join(dir, 'absent.conf')]);
    expect(unreadable.code).toBe(2);
    expect(unreadable.text).toMatch(/cannot be read \(ENOENT\)/);
    const help = await run(['nats-config', '--help']);
    expect(help.code).toBe(0);
    expect(help.text).toMatch(/2 bad usage, an invalid config file \(--check\)/);

    const missing = await run(['nats-config'], { PERRY_HUB_NATS_CREDENTIALS_DIR: join(dir, 'nope') });
    expect(missing.code).toBe(2);
    expect(missing.text).toMatch(/cannot be read \(ENOENT\)/);
    const stray = join(dir, 'stray');
    ensureNkeySeeds(stray, ['backup-job']);
    const unknown = await run(['nats-config'], { PERRY_HUB_NATS_CREDENTIALS_DIR: stray });
    expect(unknown.code).toBe(2);
    expect(unknown.text).toMatch(/"backup-job" is neither a service nor tool-<name>/);
  });
});
