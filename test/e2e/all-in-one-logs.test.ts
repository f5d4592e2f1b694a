// The all-in-one's log as an operator sees it: pretty and coloured on a terminal (run under a
// pseudo-terminal with util-linux `script`), one JSON object a line under a pipe, no key twice.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, ensureBuilt, freePorts, localEnv, ROOT, runHub, type HubProcess } from '../support/hub-process.js';
import { duplicateKeys } from '../support/log-records.js';

let dataDir: string;
const running: HubProcess[] = [];

beforeAll(() => {
  ensureBuilt();
  dataDir = mkdtempSync(join(tmpdir(), 'perry-hub-logs-'));
});

afterAll(() => {
  for (const hub of running) hub.child.kill('SIGKILL');
  rmSync(dataDir, { recursive: true, force: true });
});

const ANSI = /\x1b\[[0-9;]*m/; // eslint-disable-line no-control-regex

describe('the all-in-one log', () => {
  it('is pretty and coloured on a terminal, JSON lines under a pipe', { timeout: 300_000 }, async () => {
    const ports = await freePorts();
    const env = { ...localEnv(dataDir, ports), PERRY_HUB_LOG_LEVEL: 'info' };

    // Under a pseudo-terminal: `script -qfec CMD /dev/null` gives the command a tty and exits with its code.
    const command = `${JSON.stringify(process.execPath)} ${JSON.stringify(BIN)} start`;
    const tty = spawn('script', ['-qfec', command, '/dev/null'], {
      cwd: ROOT,
      env: { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? '/root', TERM: 'xterm', ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let screen = '';
    tty.stdout.on('data', (d: Buffer) => (screen += d.toString()));
    const ttyExited = new Promise<number | null>((resolve) => tty.on('exit', (code) => resolve(code)));
    const deadline = Date.now() + 120_000;
    while (!screen.includes('Perry Hub is up') && Date.now() < deadline && tty.exitCode === null) {
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(screen).toContain('Perry Hub is up');
    const plain = screen.replace(new RegExp(ANSI.source, 'g'), '');
    expect(screen).toMatch(ANSI);
    expect(plain).toMatch(/^\[[\d:.]+\] INFO: scheduler: service started \{"instanceId":"scheduler-/m);
    expect(screen).not.toContain('{"level":');
    // Ctrl-C: the hub stops in order, its last lines still pretty. (Only the hub's own exit code
    // counts, checked under the pipe below: `script`'s status under load is not the hub's.)
    const hubPid = Number(readFileSync(join(dataDir, 'hub.pid'), 'utf8').trim());
    process.kill(hubPid, 'SIGINT');
    await ttyExited;
    expect(() => process.kill(hubPid, 0)).toThrow();
    const after = screen.replace(new RegExp(ANSI.source, 'g'), '');
    expect(after).toMatch(/^\[[\d:.]+\] INFO: scheduler: service stopped/m);
    expect(after).toContain('Perry Hub stopped.');

    // Under a pipe: JSON.
    const piped = runHub(['start'], env);
    running.push(piped);
    await piped.waitFor(/Perry Hub is up/, 120_000);
    piped.child.kill('SIGINT');
    expect(await piped.exited).toBe(0);
    const out = piped.output();
    expect(out).not.toMatch(ANSI);
    const records = out.split('\n').filter((l) => l.startsWith('{'));
    expect(records.length).toBeGreaterThan(6);
    const parsed = records.map((l) => JSON.parse(l) as { level: number; msg: string; name: string });
    expect(parsed.filter((r) => r.msg === 'service started')).toHaveLength(6);
    expect(parsed.every((r) => r.name === 'perry-hub')).toBe(true);
    expect(records.flatMap((l) => duplicateKeys(l))).toEqual([]);
    // Everything else on stdout is the banner for the operator.
    const others = out.split('\n').filter((l) => l !== '' && !l.startsWith('{'));
    expect(others[0]).toMatch(/^Perry Hub is up/);
  });
});
