import { chmodSync, copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { natsInboxPrefix, subjects } from '@perry-hub/contracts';
import type { Msg } from '@nats-io/nats-core';
import { connectTestNats, startIsolatedNats, testNatsCredentialsDir, uniquePrefix } from '@perry-hub/testkit';
import { ConfigError, connectNats, natsAuth } from '../src/index.js';

const dir = mkdtempSync(join(tmpdir(), 'perry-hub-creds-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function problemOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems.join('\n');
  }
  throw new Error('expected a ConfigError');
}

/** The license service's connection to a server of its own, and every line it logs. */
async function asLicense() {
  const nats = await startIsolatedNats({ expectPermissionViolations: true });
  const lines: { level: number; msg: string; subject?: string; operation?: string }[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(JSON.parse(chunk.toString()) as (typeof lines)[number]);
      done();
    },
  });
  const prefix = uniquePrefix();
  const nc = await connectNats(
    { natsUrl: nats.url, natsCredentialsDir: testNatsCredentialsDir(), natsUser: '', natsPassword: '' },
    'test',
    pino({ level: 'info' }, sink),
    { identity: 'license', inboxPrefix: natsInboxPrefix(prefix, 'license') },
  );
  return { nats, prefix, nc, lines };
}

describe('NATS credentials', () => {
  const seed = readFileSync(join(testNatsCredentialsDir(), 'license.nk'), 'utf8').trim();
  const base = { natsCredentialsDir: dir, natsUser: '', natsPassword: '' };

  it('reads a service seed file, and says what is wrong with a bad one without showing it', () => {
    expect(problemOf(() => natsAuth(base, 'license'))).toMatch(/license\.nk cannot be read \(ENOENT\)/);

    copyFileSync(join(testNatsCredentialsDir(), 'license.nk'), join(dir, 'license.nk'));
    chmodSync(join(dir, 'license.nk'), 0o644);
    const open = problemOf(() => natsAuth(base, 'license'));
    expect(open).toMatch(/readable by others \(mode 644\); chmod 600/);
    expect(open).not.toContain(seed);

    chmodSync(join(dir, 'license.nk'), 0o600);
    expect(natsAuth(base, 'license').authenticator).toBeTypeOf('function');

    writeFileSync(join(dir, 'scheduler.nk'), `${seed.slice(0, -3)}xyz\n`, { mode: 0o600 });
    const bad = problemOf(() => natsAuth(base, 'scheduler'));
    expect(bad).toMatch(/does not hold an NKEY user seed/);
    expect(bad).not.toContain(seed.slice(0, 20));

    expect(problemOf(() => natsAuth({ ...base, natsUser: 'u' }, 'license'))).toMatch(/either/);
    expect(natsAuth({ natsUser: 'u', natsPassword: 'p' }, 'license')).toEqual({ user: 'u', pass: 'p' });
  });

  it('a reply the server refuses after it restarted (it forgot the request) is a warning, not an error', async () => {
    const { nats, prefix, nc, lines } = await asLicense();
    const requester = await connectTestNats(nats.url);
    let server = nats;
    try {
      const held: Msg[] = [];
      nc.subscribe(`${subjects(prefix).serviceGroup('license')}.held`, {
        callback: (_err, m) => {
          held.push(m);
        },
      });
      await nc.flush();
      const inbox = '_INBOX.harness';
      requester.publish(`${subjects(prefix).serviceGroup('license')}.held`, '{}', { reply: `${inbox}.test.1` });
      await expect.poll(() => held.length).toBe(1);
      process.kill(nats.pid, 'SIGKILL');
      server = await nats.restart();
      await expect.poll(() => lines.some((l) => l.msg === 'NATS reconnected'), { timeout: 10_000 }).toBe(true);
      held[0]!.respond('{"ok":true}');
      await nc.flush();
      await expect
        .poll(() => lines.filter((l) => l.operation === 'publish'))
        .toEqual([expect.objectContaining({ level: 40, subject: `${inbox}.test.1` })]);
      expect(lines.filter((l) => l.level >= 50)).toEqual([]);
    } finally {
      await requester.close();
      await nc.close();
      await server.stop();
    }
  });

  it('logs a permissions violation at error', async () => {
    const { prefix, nc, lines } = await asLicense();
    try {
      // The license service has no business with worker commands.
      nc.publish(subjects(prefix).workerCommand('w1'), '{}');
      await nc.flush();
      await expect
        .poll(() => lines.filter((l) => l.msg === 'NATS permissions violation'))
        .toEqual([
          expect.objectContaining({ level: 50, operation: 'publish', subject: subjects(prefix).workerCommand('w1') }),
        ]);
    } finally {
      await nc.close();
    }
  });
});
