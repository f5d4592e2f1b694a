/**
 * The vm-controller starts sign VMs on demand (and ahead of demand, on a pre-warm hint) and
 * deallocates them when idle, so compute is billed only while builds run. Pools map a worker
 * capability to a VM; the provider (azure, command or none) does the starting and stopping.
 */
import { Kvm } from '@nats-io/kv';
import { VM_POWER_STATES, topologyNames, vmStatusEndpoint } from '@perry-hub/contracts';
import { defineService, handle } from '@perry-hub/runtime';
import { VmControllerConfig } from './config.js';
import { Controller } from './controller.js';
import { createProvider } from './providers/index.js';
import { resolveSettings } from './settings.js';

export { VmControllerConfig } from './config.js';

export const vmController = defineService({
  name: 'vm-controller',
  config: VmControllerConfig,
  needsDb: false,
  start: async (deps, config) => {
    const settings = resolveSettings(config);
    const names = topologyNames(config.subjectPrefix);
    const kvm = new Kvm(deps.nc);
    const [vm, presence, leases] = await Promise.all([
      kvm.open(names.vmBucket),
      kvm.open(names.presenceBucket),
      kvm.open(names.leasesBucket),
    ]);
    const provider = await createProvider(settings, config);
    const controller = new Controller({
      nc: deps.nc,
      subjects: deps.subjects,
      log: deps.log,
      instanceId: deps.instanceId,
      provider,
      settings,
      buckets: { vm, presence, leases },
      reconcileMs: config.reconcileMs,
      tickMs: config.tickMs,
      leaseTtlMs: config.leaseTtlMs,
      metrics: deps.metrics,
    });
    await controller.start();
    const stopSampling = deps.metrics.sample(() => {
      for (const view of controller.poolViews()) {
        for (const state of VM_POWER_STATES) {
          deps.metrics.vmPowerState.set({ pool: view.pool, state }, view.power === state ? 1 : 0);
        }
      }
    });
    deps.serve([
      handle(vmStatusEndpoint, async ({ managedOnly }) => ({
        provider: settings.provider,
        pools: managedOnly && settings.provider === 'none' ? [] : await controller.store.readAll(settings),
      })),
    ]);
    deps.log.info(
      { provider: settings.provider, pools: settings.pools, idleMs: settings.timings.idleMs },
      'vm-controller configured',
    );
    return {
      stop: async () => {
        stopSampling();
        await controller.stop();
      },
      info: { provider: settings.provider, pools: settings.pools.map((p) => p.pool) },
    };
  },
});
