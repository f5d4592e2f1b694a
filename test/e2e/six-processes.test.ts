// The same hub as six separately started processes sharing one nats-server and one MariaDB.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SERVICE_NAMES } from '@perry-hub/contracts';
import { getFreePort } from '@perry-hub/localstack';
import { ensureBuilt, freePorts, localEnv, runHub, type HubProcess } from '../support/hub-process.js';

let dataDir: string;
const running: HubProcess[] = [];

beforeAll(() => {
  ensureBuilt();
  dataDir = mkdtempSync(join(tmpdir(), 'perry-hub-six-'));
});

afterAll(async () => {
  for (const hub of running.reverse()) {
    hub.child.kill('SIGTERM');
    await hub.exited;
  }
  rmSync(dataDir, { recursive: true, force: true });
});

/** SIGTERM, then how long the process took to exit (a process manager SIGKILLs a lingerer). */
async function terminate(hub: HubProcess): Promise<number> {
  const startedAt = Date.now();
  hub.child.kill('SIGTERM');
  await hub.exited;
  running.splice(running.indexOf(hub), 1);
  return Date.now() - startedAt;
}

describe('six service processes', () => {
  it('answer /api/v1/status exactly like the all-in-one', { timeout: 180_000 }, async () => {
    const ports = await freePorts();
    const infra = runHub(['infra'], localEnv(dataDir, ports));
    running.push(infra);
    await infra.waitFor(/Press Ctrl-C to stop/, 90_000);
    const exported = Object.fromEntries(
      [...infra.output().matchAll(/export (\w+)=(\S*)/g)].map((m) => [m[1]!, m[2] === "''" ? '' : m[2]!]),
    );
    expect(Object.keys(exported).sort()).toEqual([
      'PERRY_DB_HOST',
      'PERRY_DB_PASSWORD',
      'PERRY_DB_PORT',
      'PERRY_DB_USER',
      'PERRY_HUB_NATS_CREDENTIALS_DIR',
      'PERRY_HUB_NATS_URL',
    ]);
    const env = {
      ...exported,
      PERRY_HUB_HTTP_PORT: String(ports.http),
      PERRY_HUB_WS_PORT: String(ports.ws),
      PERRY_HUB_LOG_LEVEL: 'warn',
    };
    // A service without the ingest serves /metrics, /healthz and /readyz on its own port.
    const metricsPort = await getFreePort();
    const services = SERVICE_NAMES.map((name) =>
      runHub(['start', name], name === 'scheduler' ? { ...env, PERRY_HUB_METRICS_PORT: String(metricsPort) } : env),
    );
    running.push(...services);
    await Promise.all(services.map((s) => s.waitFor(/Perry Hub is up/, 60_000)));
    const pids = new Set(services.map((s) => s.child.pid));
    expect(pids.size).toBe(6);

    const res = await fetch(`http://127.0.0.1:${ports.http}/api/v1/status`);
    expect(await res.text()).toBe(
      '{"status":"ok","queue_length":0,"perry_version":"0.1.0","expected_perry_version":"","supported_targets":[],"connected_workers":0}',
    );

    const ready = await fetch(`http://127.0.0.1:${metricsPort}/readyz`);
    expect(ready.status).toBe(200);
    expect(Object.keys(((await ready.json()) as { checks: object }).checks).sort()).toEqual([
      'scheduler.lease',
      'scheduler.mysql',
      'scheduler.nats',
      'scheduler.running',
      'scheduler.topology',
    ]);
    const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    expect(metrics).toMatch(/^perry_hub_mysql_pool_wait_seconds_count\{service="scheduler"\} [1-9]/m);

    // Each exits promptly on SIGTERM, the local servers' supervisor included (its first start,
    // which installed MariaDB's system tables, once held the process open for about a minute).
    for (const service of [...services].reverse()) expect(await terminate(service)).toBeLessThan(2_000);
    expect(await terminate(infra)).toBeLessThan(10_000);
  });
});
