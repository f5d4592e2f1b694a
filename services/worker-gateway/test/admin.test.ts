// The admin endpoints: the worker list and the update broadcast, across two gateway instances,
// with the expected version kept in KV so both agree (and a restart keeps it).
import { describe, expect } from 'vitest';
import { test } from '@perry-hub/testkit';
import { call } from '@perry-hub/runtime';
import { adminWorkersEndpoint, updatePerryEndpoint, workersSummaryEndpoint } from '@perry-hub/contracts';
import { LINUX_HELLO, Peer, openBus, sleep, startGateway, until, workerIdOf } from './support/harness.js';

describe('admin endpoints', () => {
  test('update-perry sets the expected version everywhere and tells idle workers on every instance', async ({
    natsUrl,
    prefix,
  }) => {
    const bus = await openBus(natsUrl, prefix);
    const env = { PERRY_EXPECTED_VERSION: '0.5.14' };
    const a = await startGateway(natsUrl, prefix, env);
    const b = await startGateway(natsUrl, prefix, env);
    try {
      const first = await Peer.open(a.url);
      first.send({ ...LINUX_HELLO, name: 'on-a' });
      const second = await Peer.open(b.url);
      second.send('{"type":"worker_hello","capabilities":["windows-sign"],"name":"on-b","perry_version":"0.5.14"}');
      const busy = await Peer.open(b.url);
      busy.send({ ...LINUX_HELLO, name: 'busy' });
      const busyId = await workerIdOf(bus, 'busy');
      await workerIdOf(bus, 'on-a');
      await workerIdOf(bus, 'on-b');
      await bus.command(busyId, {
        kind: 'assign',
        jobId: 'job-1',
        attempt: 1,
        authToken: 't',
        manifest: {},
        credentialsSealed: null,
        tarballUrl: 'u',
        artifactUploadUrl: 'v',
      });
      await until(
        'busy in presence',
        async () => (await bus.presence.get(busyId))?.json<{ activeJobs: number }>().activeJobs === 1,
      );

      const listed = await until('all three listed', async () => {
        const r = await call(bus.nc, bus.subjects, adminWorkersEndpoint, {});
        return r.workers.length === 3 && r;
      });
      expect(listed.expectedVersion).toBe('0.5.14');
      expect(listed.workers.map((w) => [w.name, w.busy, w.maxConcurrent, w.perryVersion])).toEqual([
        ['on-a', false, 2, '0.5.14'],
        ['on-b', false, 1, '0.5.14'],
        ['busy', true, 2, '0.5.14'],
      ]);

      const result = await call(bus.nc, bus.subjects, updatePerryEndpoint, { expectedVersion: '0.5.15' });
      expect(result).toMatchObject({ expectedVersion: '0.5.15', workersNotified: 2 });
      expect(await first.frameCount(1)).toEqual(['{"type":"update_perry"}']);
      expect(await second.frameCount(1)).toEqual(['{"type":"update_perry"}']);
      await sleep(100);
      expect(busy.frames.filter((f) => f.includes('update_perry'))).toEqual([]);

      // Both instances (and the status) agree on the new version, and a restart keeps it.
      for (let i = 0; i < 4; i++) {
        expect((await call(bus.nc, bus.subjects, workersSummaryEndpoint, {})).expectedPerryVersion).toBe('0.5.15');
      }
      await a.service.stop();
      const c = await startGateway(natsUrl, prefix, env);
      const late = await Peer.open(c.url);
      late.send({ ...LINUX_HELLO, name: 'late' });
      expect(await late.frameCount(1)).toEqual(['{"type":"update_perry"}']);
      for (const p of [second, busy, late]) p.close();
      await c.service.stop();
    } finally {
      await a.service.stop();
      await b.service.stop();
      await bus.close();
    }
  });
});
