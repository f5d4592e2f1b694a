import { describe, expect } from 'vitest';
import { pino } from 'pino';
import { healthEndpoint, subjects, topologyNames } from '@perry-hub/contracts';
import { test, connectTestNats, serviceEnv } from '@perry-hub/testkit';
import { Kvm } from '@nats-io/kv';
import {
  call,
  configSchema,
  dbFields,
  instanceKey,
  defineService,
  launchService,
  loadConfig,
  natsFields,
  processFields,
} from '../src/index.js';

const log = pino({ level: 'silent' });
const Config = configSchema({ ...natsFields, ...dbFields, ...processFields });

describe('launchService', () => {
  test('serves health, then stops in order: intake, endpoints, liveness record, NATS, MySQL; stop is idempotent', async ({
    natsUrl,
    prefix,
    database,
  }) => {
    const events: string[] = [];
    const definition = defineService({
      name: 'license',
      config: Config,
      needsDb: true,
      start: async (deps) => {
        await deps.db!.query('SELECT 1');
        return {
          stop: async () => {
            // Intake stops while NATS and MySQL are still usable (in-flight work may need them).
            events.push(`intake-stop nats-closed=${deps.nc.isClosed()}`);
            await deps.db!.query('SELECT 1');
          },
        };
      },
    });
    const config = loadConfig(Config, {
      ...serviceEnv({ natsUrl, prefix, database }),
    });
    const service = await launchService(definition, config, log);
    const client = await connectTestNats(natsUrl);
    try {
      const health = await call(client, subjects(prefix), healthEndpoint('license'), {});
      expect(health).toMatchObject({ service: 'license', status: 'ok', checks: { nats: 'ok', mysql: 'ok' } });
      const instances = await new Kvm(client).open(topologyNames(prefix).instancesBucket);
      const record = instanceKey('license', service.instanceId);
      expect((await instances.get(record))?.operation).toBe('PUT');

      const first = service.stop();
      expect(service.stop()).toBe(first);
      expect(await first).toBe('clean');
      expect(await service.stop()).toBe('clean');
      expect(events).toEqual(['intake-stop nats-closed=false']);
      expect(service.history).toEqual(['intake', 'endpoints', 'liveness', 'nats', 'mysql']);
      // An orderly stop leaves no liveness record to expire: what it held is released at once.
      expect((await instances.get(record))?.operation).not.toBe('PUT');
      await expect(call(client, subjects(prefix), healthEndpoint('license'), {})).rejects.toMatchObject({
        code: 'SERVICE_UNAVAILABLE',
      });
    } finally {
      await client.close();
    }
  });

  test('a service that fails to start leaves no connection behind', async ({ natsUrl, prefix }) => {
    const NatsOnly = configSchema({ ...natsFields, ...processFields });
    const definition = defineService({
      name: 'vm-controller',
      config: NatsOnly,
      needsDb: false,
      start: async () => {
        throw new Error('cannot start');
      },
    });
    const config = loadConfig(NatsOnly, {
      ...serviceEnv({ natsUrl, prefix }),
    });
    await expect(launchService(definition, config, log)).rejects.toThrow('cannot start');
  });
});
