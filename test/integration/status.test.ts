// GET /api/v1/status crossing the bus between real services: ingest asks the scheduler and the
// worker-gateway over NATS request/reply.
import { describe, expect } from 'vitest';
import { pino } from 'pino';
import { Kvm } from '@nats-io/kv';
import { subjects, topologyNames } from '@perry-hub/contracts';
import { jetstream } from '@nats-io/jetstream';
import { launchService, loadConfig, type LaunchedService, type ServiceDefinition } from '@perry-hub/runtime';
import { scheduler } from '@perry-hub/scheduler';
import { workerGateway } from '@perry-hub/worker-gateway';
import { dbOptions, openPool } from '@perry-hub/db';
import { test, connectTestNats, serviceEnv } from '@perry-hub/testkit';
import { ingest } from '@perry-hub/ingest';

const log = pino({ level: 'silent' });

type Database = { host: string; port: number; user: string; password: string; database: string };

function envFor(natsUrl: string, prefix: string, db: Database, extra: Record<string, string> = {}) {
  return {
    ...serviceEnv({ natsUrl, prefix, database: db }),
    PERRY_HUB_HTTP_PORT: '0',
    PERRY_HUB_HTTP_HOST: '127.0.0.1',
    ...extra,
  };
}

async function launch(definition: ServiceDefinition, env: Record<string, string>): Promise<LaunchedService> {
  return launchService(definition, loadConfig(definition.config, env) as never, log);
}

describe('GET /api/v1/status', () => {
  test('answers the original shape from the scheduler and the worker-gateway', async ({
    natsUrl,
    prefix,
    database,
  }) => {
    const env = envFor(natsUrl, prefix, database, { PERRY_EXPECTED_VERSION: '0.5.14' });
    const started: LaunchedService[] = [];
    try {
      started.push(await launch(scheduler as never, env));
      started.push(await launch(workerGateway as never, env));
      started.push(await launch(ingest as never, env));
      const port = started[2]!.info['httpPort'] as number;

      const empty = await fetch(`http://127.0.0.1:${port}/api/v1/status`);
      expect(empty.status).toBe(200);
      expect(empty.headers.get('content-type')).toMatch(/^application\/json/);
      expect(await empty.text()).toBe(
        '{"status":"ok","queue_length":0,"perry_version":"0.1.0","expected_perry_version":"0.5.14","supported_targets":[],"connected_workers":0}',
      );

      // The answer is live: queued build records and worker presence change it.
      const pool = openPool(dbOptions(database, 1));
      // Two queued jobs nobody can take, arriving as the ingest records and announces them.
      const nc = await connectTestNats(natsUrl);
      for (const n of [1, 2]) {
        const jobId = `00000000-0000-4000-8000-00000000000${n}`;
        await pool.query(
          "INSERT INTO builds (id, licenseKey, tier, targets, status, queuedAt, priority, manifest) VALUES (?, 'L', 'free', '[\"visionos\"]', 'queued', ?, 1, '{}')",
          [jobId, Date.now()],
        );
        const intake = {
          jobId,
          licenseKey: 'L',
          tier: 'free',
          priority: 1,
          targets: ['visionos'],
          queuedAt: Date.now(),
          via: 'http',
        };
        await jetstream(nc).publish(subjects(prefix).intake(jobId), JSON.stringify(intake), { msgID: jobId });
      }
      await pool.end();
      const kv = await new Kvm(nc).open(topologyNames(prefix).presenceBucket);
      await kv.put(
        'w1',
        JSON.stringify({
          workerId: 'w1',
          name: 'kamatera-fra',
          capabilities: ['linux', 'android', 'windows', 'ios', 'macos', 'tvos'],
          maxConcurrent: 2,
          activeJobs: 0,
          perryVersion: '0.5.14',
          gatewayId: 'g',
          connectedAt: Date.now(),
          heartbeatAt: Date.now(),
        }),
      );
      await nc.close();
      const status = async () =>
        (await (await fetch(`http://127.0.0.1:${port}/api/v1/status`)).json()) as Record<string, unknown>;
      await expect.poll(async () => (await status())['queue_length'], { timeout: 10_000 }).toBe(2);
      const busy = await status();
      expect(busy).toEqual({
        status: 'ok',
        queue_length: 2,
        perry_version: '0.1.0',
        expected_perry_version: '0.5.14',
        supported_targets: ['macos', 'ios', 'android', 'linux', 'windows'],
        connected_workers: 1,
      });
    } finally {
      for (const s of started.reverse()) await s.stop();
    }
  });

  test('says which service is missing instead of inventing numbers', async ({ natsUrl, prefix, database }) => {
    const env = envFor(natsUrl, prefix, database);
    const gateway = await launch(workerGateway as never, env);
    const api = await launch(ingest as never, env);
    try {
      const res = await fetch(`http://127.0.0.1:${api.info['httpPort'] as number}/api/v1/status`);
      expect(res.status).toBe(503);
      expect(await res.json()).toEqual({
        error: { code: 'SERVICE_UNAVAILABLE', message: 'The scheduler service is not running' },
      });
    } finally {
      await api.stop();
      await gateway.stop();
    }
  });

  test('unknown routes get the error envelope', async ({ natsUrl, prefix, database }) => {
    const api = await launch(ingest as never, envFor(natsUrl, prefix, database));
    try {
      const res = await fetch(`http://127.0.0.1:${api.info['httpPort'] as number}/api/v1/nope`);
      expect(res.status).toBe(404);
      expect(await res.json()).toMatchObject({ error: { code: 'NOT_FOUND' } });
    } finally {
      await api.stop();
    }
  });
});
