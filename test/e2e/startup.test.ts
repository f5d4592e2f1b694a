// Startup that explains itself: every bad value reported together (the log level included), a
// port in use found before anything starts and named by its variable, NATS and MySQL that do not
// answer reported within seconds with the address tried and retried with a countdown. Never a
// stack trace. Also: `npm start -- <command>` and `npx perry-hub` reach the command unchanged.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt, freePorts, localEnv, ROOT, runHub, type HubProcess } from '../support/hub-process.js';

const STACK_TRACE = /\n\s+at .+:\d+:\d+/;
let dataDir: string;
const running: HubProcess[] = [];
const servers: Server[] = [];

beforeAll(() => {
  ensureBuilt();
  dataDir = mkdtempSync(join(tmpdir(), 'perry-hub-startup-'));
});

afterAll(() => {
  for (const hub of running) hub.child.kill('SIGKILL');
  for (const s of servers) s.close();
  rmSync(dataDir, { recursive: true, force: true });
});

function listenOn(port: number): Promise<Server> {
  return new Promise((resolve) => {
    const server = createServer((socket) => socket.destroy());
    servers.push(server);
    server.listen(port, '127.0.0.1', () => resolve(server));
  });
}

describe('perry-hub start explains a failure to start', () => {
  it('reports a bad log level with the other bad values, exit 2, no stack trace, nothing started', async () => {
    const ports = await freePorts();
    const dir = join(dataDir, 'bad-values');
    const hub = runHub(['start'], {
      ...localEnv(dir, ports),
      PERRY_HUB_LOG_LEVEL: 'loud',
      PERRY_HUB_LOG_FORMAT: 'fancy',
      PERRY_HUB_LOCAL_NATS_PORT: 'four',
    });
    running.push(hub);
    expect(await hub.exited).toBe(2);
    const out = hub.output();
    expect(out).toMatch(/Invalid configuration \(3 problems\)/);
    expect(out).toContain('PERRY_HUB_LOG_LEVEL');
    expect(out).toContain(
      'PERRY_HUB_LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent (got "loud")',
    );
    expect(out).toContain('PERRY_HUB_LOG_FORMAT');
    expect(out).toContain('PERRY_HUB_LOCAL_NATS_PORT must be an integer');
    expect(out).not.toMatch(STACK_TRACE);
    expect(existsSync(dir)).toBe(false);
  });

  it('finds a port in use before starting anything and names the variable to change', async () => {
    const ports = await freePorts();
    await listenOn(ports.http);
    const dir = join(dataDir, 'taken');
    const hub = runHub(['start'], { ...localEnv(dir, ports), PERRY_HUB_LOG_LEVEL: 'info' });
    running.push(hub);
    expect(await hub.exited).toBe(2);
    const out = hub.output();
    expect(out).toContain(`port ${ports.http} (PERRY_HUB_HTTP_PORT) is already in use`);
    expect(out).toContain('set PERRY_HUB_HTTP_PORT to a free port');
    expect(out).not.toMatch(STACK_TRACE);
    // Found before the local nats-server and MariaDB were started.
    expect(out).not.toContain('starting local');
    expect(existsSync(join(dir, 'nats'))).toBe(false);
  });

  it('reports unreachable NATS, then MySQL, within seconds with the address tried, retrying with a countdown', async () => {
    const ports = await freePorts();
    const hub = runHub(['start', 'scheduler'], {
      PERRY_HUB_NATS_URL: `nats://127.0.0.1:${ports.nats}`,
      PERRY_DB_HOST: '127.0.0.1',
      PERRY_DB_PORT: String(ports.db),
      PERRY_HUB_LOG_LEVEL: 'warn',
    });
    running.push(hub);
    const startedAt = Date.now();
    await hub.waitFor(
      new RegExp(`NATS unreachable at nats://127\\.0\\.0\\.1:${ports.nats} \\(ECONNREFUSED\\)`),
      10_000,
    );
    console.log(`NATS reported unreachable after ${Date.now() - startedAt} ms`);
    expect(hub.output()).toMatch(/set PERRY_HUB_NATS_URL; retrying in 5 s/);
    // Something answers there now: the next attempt gets past NATS and waits for MySQL.
    await listenOn(ports.nats);
    await hub.waitFor(/NATS is reachable/, 15_000);
    await hub.waitFor(new RegExp(`MySQL unreachable at 127\\.0\\.0\\.1:${ports.db} \\(ECONNREFUSED\\)`), 10_000);
    expect(hub.output()).toContain('set PERRY_DB_HOST/PERRY_DB_PORT');
    hub.child.kill('SIGINT');
    expect(await hub.exited).toBe(1);
    expect(hub.output()).toContain('perry-hub: stopped before the hub started');
    expect(hub.output()).not.toMatch(STACK_TRACE);
  });
});

describe('values that only made sense to a running service are judged with the others', () => {
  it('reports a credentials key that is not 32 bytes with the other bad values, exit 2, nothing started', async () => {
    const ports = await freePorts();
    const dir = join(dataDir, 'bad-key');
    const hub = runHub(['start'], {
      ...localEnv(dir, ports),
      PERRY_HUB_CREDENTIALS_KEY: 'short',
      PERRY_HUB_HTTP_PORT: 'http',
    });
    running.push(hub);
    expect(await hub.exited).toBe(2);
    const out = hub.output();
    expect(out).toMatch(/Invalid configuration \(2 problems\)/);
    expect(out).toContain(
      'PERRY_HUB_CREDENTIALS_KEY must be comma-separated keys, each the base64 of 32 bytes (e.g. from `openssl rand -base64 32`): key 1 is not the base64 of 32 bytes (got [redacted])',
    );
    expect(out).toContain('PERRY_HUB_HTTP_PORT must be an integer');
    expect(out).not.toContain('short');
    expect(out).not.toContain('failed to start');
    expect(out).not.toMatch(STACK_TRACE);
    expect(existsSync(dir)).toBe(false);
  });

  it('reports address lists that are not addresses or CIDR ranges, each by its variable, exit 2', async () => {
    const ports = await freePorts();
    const dir = join(dataDir, 'bad-addresses');
    const hub = runHub(['start'], {
      ...localEnv(dir, ports),
      PERRY_HUB_TRUST_PROXY: 'garbage,,x',
      PERRY_HUB_WS_TRUSTED_PROXIES: 'garbage',
      PERRY_HUB_CALLBACK_ALLOWED_ADDRESSES: '127.0.0.1,10.0.0.0/33',
    });
    running.push(hub);
    expect(await hub.exited).toBe(2);
    const out = hub.output();
    expect(out).toMatch(/Invalid configuration \(3 problems\)/);
    const expected = 'must be a comma-separated list of IP addresses or CIDR ranges (e.g. 127.0.0.1,10.0.0.0/8)';
    expect(out).toContain(
      `PERRY_HUB_TRUST_PROXY ${expected}: "garbage", "x" are neither an address nor a range (got "garbage,,x")`,
    );
    expect(out).toContain(
      `PERRY_HUB_WS_TRUSTED_PROXIES ${expected}: "garbage" is neither an address nor a range (got "garbage")`,
    );
    expect(out).toContain(
      `PERRY_HUB_CALLBACK_ALLOWED_ADDRESSES ${expected}: "10.0.0.0/33" is neither an address nor a range`,
    );
    expect(out).not.toContain('failed to start');
    expect(out).not.toMatch(STACK_TRACE);
    expect(existsSync(dir)).toBe(false);
  });

  it('judges a credentials key kept in the data directory before starting anything, naming the file', async () => {
    const ports = await freePorts();
    const dir = join(dataDir, 'bad-kept-key');
    mkdirSync(dir, { recursive: true });
    const file = join(dir, 'secrets.json');
    writeFileSync(file, JSON.stringify({ PERRY_HUB_CREDENTIALS_KEY: 'edited-by-hand' }), { mode: 0o600 });
    const hub = runHub(['start'], localEnv(dir, ports));
    running.push(hub);
    expect(await hub.exited).toBe(2);
    const out = hub.output();
    expect(out).toMatch(/Invalid configuration \(1 problem\)/);
    expect(out).toContain(
      `PERRY_HUB_CREDENTIALS_KEY must be comma-separated keys, each the base64 of 32 bytes (e.g. from \`openssl rand -base64 32\`): key 1 is not the base64 of 32 bytes (got [redacted]), as kept in ${file}`,
    );
    expect(out).not.toContain('edited-by-hand');
    expect(out).not.toMatch(STACK_TRACE);
    expect(existsSync(join(dir, 'nats'))).toBe(false);
  });

  it.each([
    ['ingest', ['PERRY_HUB_CREDENTIALS_KEY', 'PERRY_HUB_TRUST_PROXY', 'PERRY_HUB_CALLBACK_ALLOWED_ADDRESSES']],
    ['worker-gateway', ['PERRY_HUB_CREDENTIALS_KEY', 'PERRY_HUB_WS_TRUSTED_PROXIES']],
  ])('reports them when %s runs alone too', async (service, variables) => {
    const ports = await freePorts();
    const hub = runHub([service], {
      PERRY_HUB_NATS_URL: `nats://127.0.0.1:${ports.nats}`,
      PERRY_DB_HOST: '127.0.0.1',
      PERRY_DB_PORT: String(ports.db),
      PERRY_HUB_HTTP_PORT: String(ports.http),
      PERRY_HUB_WS_PORT: String(ports.ws),
      PERRY_HUB_CREDENTIALS_KEY: `${Buffer.alloc(32).toString('base64')},${Buffer.alloc(16).toString('base64')}`,
      PERRY_HUB_TRUST_PROXY: '10.0.0.1,proxy.example',
      PERRY_HUB_WS_TRUSTED_PROXIES: '10.0.0.1,proxy.example',
      PERRY_HUB_CALLBACK_ALLOWED_ADDRESSES: 'localhost',
    });
    running.push(hub);
    expect(await hub.exited).toBe(2);
    const out = hub.output();
    expect(out).toContain(`Invalid configuration (${variables.length} problems)`);
    expect(out).toMatch(/PERRY_HUB_CREDENTIALS_KEY must be .*: key 2 is not the base64 of 32 bytes/);
    for (const variable of variables) expect(out).toContain(`${variable} must be`);
    expect(out).not.toContain('unreachable');
    expect(out).not.toMatch(STACK_TRACE);
  });
});

describe('the perry-hub command from the repository', () => {
  it('npm start -- config runs the config command; npx perry-hub finds the workspace bin', { timeout: 300_000 }, () => {
    const env = { ...process.env, npm_config_loglevel: 'error' };
    const config = spawnSync('npm', ['start', '--', 'config'], { cwd: ROOT, env, encoding: 'utf8', timeout: 300_000 });
    expect(config.stderr).not.toContain('unknown service');
    expect(config.status).toBe(0);
    expect(config.stdout).toContain('PERRY_HUB_LOG_LEVEL');
    expect(config.stdout).toContain('PERRY_HUB_LOG_FORMAT');
    const version = spawnSync('npx', ['--no-install', 'perry-hub', '--version'], { cwd: ROOT, env, encoding: 'utf8' });
    expect(version.stdout.trim()).toBe('0.1.0');
    expect(version.status).toBe(0);
  });
});
