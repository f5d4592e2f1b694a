/**
 * The license service owns licenses, accounts, usage counters, quotas and rate limits (MySQL).
 * So far it joins the bus, migrates the schema and answers health requests.
 */
import { configSchema, dbFields, defineService, natsFields, processFields } from '@perry-hub/runtime';

export const LicenseConfig = configSchema({ ...natsFields, ...dbFields, ...processFields });

export const license = defineService({
  name: 'license',
  config: LicenseConfig,
  needsDb: true,
  start: async () => ({ stop: async () => undefined }),
});
