// The perry-hub client commands' usage: what their --help offers, and the mistakes they refuse
// themselves (exit 2) before anything reaches a hub. No hub runs here: PERRY_HUB_SERVER points at a
// port nothing listens on, so a command that went to the network would say "cannot reach" (exit 3).
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
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
