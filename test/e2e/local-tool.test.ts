// The all-in-one's own tool identity, `tool-local`, as the Quick start offers it for trying the
// NATS API: with nothing but its seed file from the data directory, a tool lists its jobs,
// uploads a tarball, submits it, follows it to its end and downloads the artifact; the identity
// is a registered tool (perry-hub tools list shows it), made once and kept across restarts.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { connect, nkeyAuthenticator, type NatsConnection } from '@nats-io/transport-node';
import { ToolClient, toolConnectOptions } from '@perry-hub/client';
import { until } from '@perry-hub/testkit';
import { ensureBuilt } from '../support/hub-process.js';
import { ProcessHub } from '../support/process-hub.js';
import { expectedArtifact } from '../support/rust-worker-jobs.js';
import { linuxWorker, type SimulatedWorker } from '../support/rust-workers.js';
import { MANIFEST, WORKER_SECRET, tarball } from '../support/test-hub.js';
import { runCli } from './cli-support.js';

/** Connect as the local tool with the seed file the all-in-one keeps (the server may be reloading). */
async function connectLocalTool(hub: ProcessHub): Promise<NatsConnection> {
  const seedFile = join(hub.options.local!.dataDir, 'nats-credentials', 'tool-local.nk');
  let nc: NatsConnection | undefined;
  await until('the local tool connects and is known', async () => {
    try {
      nc = await connect({
        servers: hub.options.natsUrl,
        authenticator: nkeyAuthenticator(new TextEncoder().encode(readFileSync(seedFile, 'utf8').trim())),
        ...toolConnectOptions('local'),
      });
      await new ToolClient(nc, { tool: 'local' }).list();
      return true;
    } catch {
      await nc?.close().catch(() => undefined);
      return false;
    }
  });
  return nc!;
}

describe('the local tool of the all-in-one', () => {
  test('is a registered tool that can do the whole NATS flow, kept across restarts', { timeout: 240_000 }, async () => {
    ensureBuilt();
    const dataDir = mkdtempSync(join(tmpdir(), 'perry-hub-local-tool-'));
    const hub = await ProcessHub.startAllInOne(dataDir);
    const workers: SimulatedWorker[] = [];
    const connections: NatsConnection[] = [];
    try {
      const worker = linuxWorker({ url: hub.workerUrl, secret: WORKER_SECRET, name: 'local-linux' });
      workers.push(worker);
      await worker.connected();

      const nc = await connectLocalTool(hub);
      connections.push(nc);
      const tool = new ToolClient(nc, { tool: 'local' });
      expect(await tool.list()).toEqual({ jobs: [], next_cursor: null });
      const input = tarball('local tool');
      const { job_id } = await tool.submit({ manifest: { ...MANIFEST, targets: ['linux'] }, tarball: input });
      const { outcome } = await tool.wait(job_id);
      expect(outcome).toBe('succeeded');
      const status = await tool.status(job_id);
      expect(status).toMatchObject({ state: 'completed', targets: ['linux'] });
      expect(await tool.download(job_id, status.artifacts[0]!.name)).toEqual(expectedArtifact('linux', 'linux', input));

      const admin = { PERRY_HUB_SERVER: hub.url, PERRY_HUB_ADMIN_SECRET: hub.env['PERRY_HUB_ADMIN_SECRET']! };
      const listed = async () => {
        const run = await runCli(['tools', 'list', '--json'], admin);
        expect(run.code).toBe(0);
        return (JSON.parse(run.stdout) as { tools: { name: string; nkey_public: string }[] }).tools;
      };
      const before = await listed();
      expect(before.map((t) => t.name)).toEqual(['local']);

      // A restart finds it: the same identity, the same seed, its job still its own.
      const natsLog = join(dataDir, 'nats.log');
      const reloadsSinceServerStart = () => {
        const log = readFileSync(natsLog, 'utf8');
        return log.slice(log.lastIndexOf('Server is ready')).split('Reloaded server configuration').length - 1;
      };
      expect(reloadsSinceServerStart()).toBe(1);
      await nc.close();
      await hub.process('hub').restart();
      await hub.process('hub').up();
      await hub.reconnect();
      expect(await listed()).toEqual(before);
      const again = await connectLocalTool(hub);
      connections.push(again);
      // The restart found the server's users as they should be and did not reload it while its
      // clients came back (the first start did, to give it the tool's new seed).
      expect(reloadsSinceServerStart()).toBe(0);
      const jobs = await new ToolClient(again, { tool: 'local' }).list();
      expect(jobs.jobs.map((j) => j.id)).toEqual([job_id]);
    } finally {
      for (const c of connections) await c.close().catch(() => undefined);
      for (const w of workers) await w.stop();
      await hub.stop();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
