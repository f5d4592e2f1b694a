import { describe, expect, it } from 'vitest';
import { ConfigError, ProcessOps, serveOps } from '../src/index.js';

describe('ProcessOps and its HTTP server', () => {
  it('is ready only when every check says ok; /readyz, /healthz and /metrics over HTTP', async () => {
    const ops = new ProcessOps();
    expect((await ops.readiness()).ready).toBe(false); // nothing started yet
    let nats = 'ok';
    const remove = ops.check('scheduler.nats', () => nats);
    ops.check('scheduler.mysql', async () => 'ok');
    ops.metrics.jobsFinished.inc({ outcome: 'succeeded' });
    const server = await serveOps(ops, 0, '127.0.0.1');
    const url = `http://127.0.0.1:${server.port}`;
    try {
      expect((await fetch(`${url}/readyz`)).status).toBe(200);
      nats = 'disconnected for 3 s, reconnecting';
      const down = await fetch(`${url}/readyz`);
      expect(down.status).toBe(503);
      expect(await down.json()).toEqual({
        ready: false,
        checks: { 'scheduler.mysql': 'ok', 'scheduler.nats': 'disconnected for 3 s, reconnecting' },
      });
      ops.check('scheduler.lease', () => {
        throw new Error('lease store unreachable');
      });
      remove();
      expect((await (await fetch(`${url}/readyz`)).json()) as object).toMatchObject({
        checks: { 'scheduler.lease': 'lease store unreachable' },
      });
      expect((await fetch(`${url}/healthz`)).status).toBe(200);
      const metrics = await (await fetch(`${url}/metrics`)).text();
      expect(metrics).toContain('perry_hub_jobs_finished_total{outcome="succeeded"} 1');
      expect((await fetch(`${url}/nothing`)).status).toBe(404);

      // A taken port names the variable to change.
      const second = serveOps(new ProcessOps(), server.port, '127.0.0.1');
      await expect(second).rejects.toBeInstanceOf(ConfigError);
      await expect(second).rejects.toThrow(/PERRY_HUB_METRICS_PORT: port \d+ on 127.0.0.1 is already in use/);
    } finally {
      await server.close();
    }
  });
});
