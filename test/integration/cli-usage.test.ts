// The perry-hub client commands' usage: what their --help offers, and the mistakes they refuse
// themselves (exit 2) before anything reaches a hub. No hub runs here: PERRY_HUB_SERVER points at a
// port nothing listens on, so a command that went to the network would say "cannot reach" (exit 3).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { main } from '@perry-hub/cli';

const NOWHERE = { PERRY_HUB_SERVER: 'http://127.0.0.1:9', PERRY_HUB_ADMIN_SECRET: 'secret' };

async function run(argv: string[], env: Record<string, string> = NOWHERE): Promise<{ code: number; text: string }> {
  const out = new PassThrough();
  let text = '';
  out.on('data', (chunk: Buffer) => (text += chunk.toString()));
  const code = await main(argv, env, out);
  return { code, text };
}

describe('perry-hub admin-only commands', () => {
  it.each(['workers', 'queue', 'vm'])('%s offers only the admin secret', async (command) => {
    const help = await run([command, '--help']);
    expect(help.code).toBe(0);
    expect(help.text).toContain('--admin-secret');
    expect(help.text).not.toMatch(/--license-key|--api-token|PERRY_LICENSE_KEY|PERRY_HUB_API_TOKEN/);
    expect(help.text).not.toContain('only its own jobs');

    const owner = await run([command, '--license-key', 'some-license']);
    expect(owner.code).toBe(2);
    expect(owner.text).toContain("unknown option '--license-key'");
  });
});

describe('perry-hub usage mistakes with --json', () => {
  it.each([
    [['workers', '--nope', '--json'], "unknown option '--nope'"],
    [['jobs', '--json', '--limit'], "option '--limit <n>' argument missing"],
    [['licenses', 'nosuchcommand', '--json'], "unknown command 'nosuchcommand'"],
  ])('%j prints one JSON error on stdout, the usage on stderr', async (argv, message) => {
    const [out, err] = [new PassThrough(), new PassThrough()];
    let [stdout, stderr] = ['', ''];
    out.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    err.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    expect(await main(argv, NOWHERE, out, err)).toBe(2);
    expect(JSON.parse(stdout)).toEqual({ error: { message, exit_code: 2 } });
    expect(stderr).toContain(message);
  });
});

describe('perry-hub option values', () => {
  const project = mkdtempSync(join(tmpdir(), 'perry-hub-cli-usage-'));
  writeFileSync(join(project, 'package.json'), '{"name":"usage"}');
  afterAll(() => rmSync(project, { recursive: true, force: true }));

  it.each([
    [['jobs', '--limit', 'abc'], '--limit must be a whole number from 1 to 200 (got "abc")'],
    [['jobs', '--limit', '0'], '--limit must be a whole number from 1 to 200 (got "0")'],
    [['jobs', '--limit', '201'], '--limit must be a whole number from 1 to 200 (got "201")'],
    [
      ['jobs', '--state', 'running,foo'],
      '--state must be one or more of queued, running, completed, failed, cancelled, expired, comma-separated (got "running,foo")',
    ],
    [['jobs', '--since', 'notatime'], '--since must be an ISO 8601 time or epoch milliseconds (got "notatime")'],
    [['licenses', 'list', '--limit', '5000'], '--limit must be a whole number from 1 to 1000 (got "5000")'],
    [['licenses', 'list', '--tier', 'gold'], '--tier must be one of free, pro (got "gold")'],
    [['licenses', 'create', '--github-id', '1', '--github-username', 'u', '--tier', 'gold'], '--tier must be one of'],
    [['licenses', 'upgrade', 'some-account', '--tier', 'gold'], '--tier must be one of free, pro (got "gold")'],
  ])('%j is refused before it reaches a hub', async (argv, message) => {
    const { code, text } = await run(argv);
    expect(text).toContain(message);
    expect(text).not.toContain('cannot reach');
    expect(code).toBe(2);
  });

  it('takes good values to the hub (here: one that cannot be reached)', async () => {
    for (const argv of [
      ['jobs', '--limit', '200', '--state', 'queued,running', '--since', '2025-01-01T00:00:00Z'],
      ['jobs', '--since', '1735689600000'],
      ['licenses', 'list', '--limit', '1000', '--tier', 'pro'],
    ]) {
      const { code, text } = await run(argv);
      expect(text).toContain('cannot reach the hub');
      expect(code).toBe(3);
    }
  });

  it('submit refuses an unknown target before packing or uploading, with --json too', async () => {
    const env = { ...NOWHERE, PERRY_LICENSE_KEY: 'some-license' };
    const bad = await run(['submit', project, '--target', 'linux', '--target', 'nosuchtarget'], env);
    expect(bad.text).toContain(
      '--target must be one of macos, ios, visionos, watchos, tvos, android, linux, windows, web',
    );
    expect(bad.text).not.toContain('Packed');
    expect(bad.code).toBe(2);
    const json = await run(['submit', project, '--target', 'nosuchtarget', '--json'], env);
    expect(json.code).toBe(2);
    expect(json.text).toContain('"exit_code":2');

    const good = await run(['submit', project, '--target', 'Linux'], env);
    expect(good.text).toContain('Packed');
    expect(good.text).toContain('cannot reach the hub');
    expect(good.code).toBe(3);
  });
});
