/**
 * The vm-controller starts sign VMs on demand and deallocates them when idle. So far it joins
 * the bus, ensures its state bucket and answers health requests.
 */
import { configSchema, defineService, natsFields, processFields } from '@perry-hub/runtime';

export const VmControllerConfig = configSchema({ ...natsFields, ...processFields });

export const vmController = defineService({
  name: 'vm-controller',
  config: VmControllerConfig,
  needsDb: false,
  start: async () => ({ stop: async () => undefined }),
});
