// `perry-hub start` as an operator runs it: one process brings up nats-server, MariaDB and the six
// services, answers /api/v1/status, and leaves nothing behind on Ctrl-C or after kill -9.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ensureBuilt,
  freePorts,
  isAlive,
  localEnv,
  recordedServerPids,
  runHub,
  waitUntil,
  type HubProcess,
} from '../support/hub-process.js';

const EMPTY_STATUS =
  '{"status":"ok","queue_length":0,"perry_version":"0.1.0","expected_perry_version":"","supported_targets":[],"connected_workers":0}';

let dataDir: string;
const running: HubProcess[] = [];

beforeAll(() => {
  ensureBuilt();
  dataDir = mkdtempSync(join(tmpdir(), 'perry-hub-e2e-'));
});

afterAll(() => {
  for (const hub of running) hub.child.kill('SIGKILL');
  rmSync(dataDir, { recursive: true, force: true });
});

describe('perry-hub start (all-in-one)', () => {
  it(
    'comes up with the original status answer; SIGINT stops it and its servers; kill -9 leaves a reusable data dir',
    { timeout: 300_000 },
    async () => {
      const ports = await freePorts();
      const env = localEnv(dataDir, ports);

      const first = runHub(['start'], env);
      running.push(first);
      await first.waitFor(/Perry Hub is up/, 90_000);
      expect(first.output()).toContain(`HTTP API  http://127.0.0.1:${ports.http}`);
      expect(first.output()).toContain(`Monitor   http://127.0.0.1:${ports.natsMonitor}`);
      const varz = (await (await fetch(`http://127.0.0.1:${ports.natsMonitor}/varz`)).json()) as { in_msgs: number };
      expect(varz.in_msgs).toBeGreaterThan(0);
      const res = await fetch(`http://127.0.0.1:${ports.http}/api/v1/status`);
      expect(await res.text()).toBe(EMPTY_STATUS);
      const servers = recordedServerPids(dataDir);
      expect(servers).toHaveLength(2);
      expect(servers.every(isAlive)).toBe(true);

      first.child.kill('SIGINT');
      expect(await first.exited).toBe(0);
      expect(first.output()).toContain('Perry Hub stopped.');
      expect(servers.some(isAlive)).toBe(false);

      // Second start: everything installed and initialised; then a crash of the hub process.
      const second = runHub(['start'], env);
      running.push(second);
      const startedAt = Date.now();
      await second.waitFor(/Perry Hub is up/, 60_000);
      const secondStartMs = Date.now() - startedAt;
      console.log(`second start up in ${secondStartMs} ms`);
      const crashed = recordedServerPids(dataDir);
      second.child.kill('SIGKILL');
      await second.exited;
      expect(await waitUntil(() => !crashed.some(isAlive), 20_000)).toBe(true);

      const third = runHub(['start'], env);
      running.push(third);
      await third.waitFor(/Perry Hub is up/, 60_000);
      expect(await (await fetch(`http://127.0.0.1:${ports.http}/api/v1/status`)).text()).toBe(EMPTY_STATUS);
      third.child.kill('SIGTERM');
      expect(await third.exited).toBe(0);
    },
  );

  it('refuses a bad configuration listing every problem, before starting anything', async () => {
    const ports = await freePorts();
    const hub = runHub(['start'], {
      ...localEnv(join(dataDir, 'never-used'), ports),
      PERRY_HUB_HTTP_PORT: 'eighty',
      PERRY_DB_PORT: '0',
      PERRY_HUB_SUBJECT_PREFIX: 'Has.Dots',
    });
    running.push(hub);
    expect(await hub.exited).toBe(2);
    const out = hub.output();
    expect(out).toMatch(/Invalid configuration \(3 problems\)/);
    expect(out).toContain('PERRY_HUB_HTTP_PORT must be an integer');
    expect(out).toContain('PERRY_DB_PORT');
    expect(out).toContain('PERRY_HUB_SUBJECT_PREFIX');
  });

  it('prints usage with --help and rejects unknown services', async () => {
    const help = runHub(['--help'], {});
    expect(await help.exited).toBe(0);
    expect(help.output()).toMatch(/perry-hub start <service>/);
    const bad = runHub(['start', 'schedulr'], {});
    expect(await bad.exited).toBe(2);
    expect(bad.output()).toContain('unknown service "schedulr"');
  });
});
