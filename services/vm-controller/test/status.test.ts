// The vm-status endpoint and the pool state as users see it, with automatic start disabled.
import { describe, expect } from 'vitest';
import { pino } from 'pino';
import { topologyNames, vmStatusEndpoint } from '@perry-hub/contracts';
import { test, serviceEnv } from '@perry-hub/testkit';
import { call, launchService, loadConfig, type LaunchedService } from '@perry-hub/runtime';
import { vmController } from '../src/index.js';
import { openBus, until } from './support/bus.js';

const log = pino({ level: 'silent' });
const DISABLED = 'No windows-sign worker is connected and automatic VM start is disabled';

describe('vm-status with the none provider', () => {
  test('waiting jobs are told why they wait, on the bus and through vm-status of every instance', async ({
    natsUrl,
    prefix,
  }) => {
    const bus = await openBus(natsUrl, prefix);
    const started: LaunchedService[] = [];
    try {
      const env = {
        ...serviceEnv({ natsUrl, prefix }),
        PERRY_HUB_VM_POOLS: 'macos-sign',
        PERRY_HUB_VM_TICK_MS: '100',
        PERRY_HUB_VM_LEASE_TTL_MS: '1000',
      };
      started.push(await launchService(vmController, loadConfig(vmController.config, env), log));
      started.push(await launchService(vmController, loadConfig(vmController.config, env), log));
      bus.depth('windows-sign', { queued: 1 });
      const waiting = await until('the disabled message', () =>
        bus.states.find((s) => s.state.pool === 'windows-sign' && s.state.message === DISABLED),
      );
      expect(waiting.state).toMatchObject({ power: 'unknown', draining: false });

      // Whichever instance answers (both serve it, only one acts), the answer is the same.
      for (let i = 0; i < 4; i++) {
        const status = await call(bus.nc, bus.subjects, vmStatusEndpoint, {});
        expect(status.provider).toBe('none');
        expect(status.pools.map((p) => [p.pool, p.capability, p.message])).toEqual([
          ['windows-sign', 'windows-sign', DISABLED],
          [
            'macos-sign',
            'macos-sign',
            'Automatic VM start is disabled; jobs for macos-sign wait until a worker connects',
          ],
        ]);
      }

      // `/status` asks for managed pools only: without a provider, none, and the bucket unread.
      const stream = `KV_${topologyNames(prefix).vmBucket}`;
      const reads: string[] = [];
      const tap = bus.nc.subscribe('$JS.API.>', {
        callback: (_e, m) => void (m.subject.includes(stream) && reads.push(m.subject)),
      });
      await bus.nc.flush();
      const managed = await call(bus.nc, bus.subjects, vmStatusEndpoint, { managedOnly: true });
      await bus.nc.flush();
      expect(managed).toEqual({ provider: 'none', pools: [] });
      expect(reads).toEqual([]);
      // The same tap sees the bucket read by the full answer (one get per pool).
      await call(bus.nc, bus.subjects, vmStatusEndpoint, { managedOnly: false });
      await until('the full answer reading the bucket', () => reads.length >= 2);
      tap.unsubscribe();

      // A connected worker changes the story.
      await bus.workerUp('w1', 'windows-sign');
      await until('the connected message', () =>
        bus.states.find((s) => /^A windows-sign worker is connected/.test(s.state.message)),
      );
    } finally {
      for (const s of started.reverse()) await s.stop();
      await bus.close();
    }
  });
});
