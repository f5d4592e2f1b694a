import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { Lifecycle } from '../src/index.js';

const log = pino({ level: 'silent' });

describe('Lifecycle', () => {
  it('closes stages in the order they were added, once, however often stop is called', async () => {
    const calls: string[] = [];
    const lc = new Lifecycle({ graceMs: 1000, forceMs: 1000, log });
    for (const name of ['intake', 'nats', 'mysql']) {
      lc.add({ name, close: async () => void calls.push(name) });
    }
    const [a, b] = [lc.stop(), lc.stop()];
    expect(a).toBe(b);
    expect(await a).toBe('clean');
    expect(await lc.stop()).toBe('clean');
    expect(calls).toEqual(['intake', 'nats', 'mysql']);
    expect(lc.history).toEqual(['intake', 'nats', 'mysql']);
  });

  it('goes on with the next stage when one fails', async () => {
    const lc = new Lifecycle({ graceMs: 1000, forceMs: 1000, log });
    lc.add({ name: 'a', close: async () => Promise.reject(new Error('boom')) });
    lc.add({ name: 'b', close: async () => undefined });
    expect(await lc.stop()).toBe('clean');
    expect(lc.history).toEqual(['a', 'b']);
  });

  it('forces every stage after the grace deadline', async () => {
    const forced: string[] = [];
    const lc = new Lifecycle({ graceMs: 50, forceMs: 1000, log });
    lc.add({ name: 'hangs', close: () => new Promise(() => undefined), force: () => void forced.push('hangs') });
    lc.add({ name: 'after', close: async () => undefined, force: () => void forced.push('after') });
    expect(await lc.stop()).toBe('forced');
    expect(forced).toEqual(['hangs', 'after']);
  });

  it('gives up after the force deadline so the process can exit', async () => {
    const lc = new Lifecycle({ graceMs: 20, forceMs: 20, log });
    lc.add({ name: 'stuck', close: () => new Promise(() => undefined), force: () => new Promise(() => undefined) });
    expect(await lc.stop()).toBe('abandoned');
    await expect(lc.stopped).resolves.toBe('abandoned');
  });
});

describe('an uncaught error', () => {
  const ROOT = join(import.meta.dirname, '..', '..', '..');
  const run = (how: string) =>
    new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawn(
        process.execPath,
        [
          '--conditions=@perry-hub/source',
          '--import',
          join(ROOT, 'libs/localstack/test/support/register-ts.mjs'),
          join(import.meta.dirname, 'fixtures', 'uncaught.ts'),
          how,
        ],
        { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let [stdout, stderr] = ['', ''];
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      child.on('exit', (code) => {
        clearTimeout(timer);
        resolve({ code, stdout, stderr });
      });
    });
  const fatal = (stdout: string) =>
    stdout
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map(
        (l) =>
          JSON.parse(l) as { level: number; msg: string; origin?: string; err?: { message: string; stack: string } },
      )
      .filter((r) => r.level === 60);

  it.each([
    ['rejection', 'unhandledRejection', 'nobody awaited this'],
    ['throw', 'uncaughtException', 'thrown from a timer'],
  ])(
    '(%s) is a fatal record with its stack and origin, then exit 1',
    { timeout: 30_000 },
    async (how, origin, message) => {
      const { code, stdout } = await run(how);
      expect(code).toBe(1);
      const records = fatal(stdout);
      expect(records).toHaveLength(1);
      expect(records[0]).toMatchObject({ msg: 'unhandled error: the process exits', origin, err: { message } });
      expect(records[0]!.err!.stack).toContain('uncaught.ts');
    },
  );

  it('is recorded once when another follows it', { timeout: 30_000 }, async () => {
    const { code, stdout } = await run('twice');
    expect(code).toBe(1);
    expect(fatal(stdout).map((r) => r.err?.message)).toEqual(['nobody awaited this']);
  });
});
