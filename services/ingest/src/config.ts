import Type, { type Static } from 'typebox';
import { configSchema, dbFields, fromEnv, natsFields, processFields } from '@perry-hub/runtime';

export const IngestConfig = configSchema({
  ...natsFields,
  ...dbFields,
  ...processFields,
  httpPort: fromEnv('PERRY_HUB_HTTP_PORT', Type.Integer({ minimum: 0, maximum: 65535, default: 3456 }), {
    description: 'HTTP port of the public API (0 picks a free port)',
  }),
  httpHost: fromEnv('PERRY_HUB_HTTP_HOST', Type.String({ minLength: 1, default: '0.0.0.0' }), {
    description: 'Address the HTTP server binds to',
  }),
  publicUrl: fromEnv(
    'PERRY_HUB_PUBLIC_URL',
    Type.String({ pattern: '^https?://[^\\s/]+(/[^\\s]*)?$', default: 'https://hub.perryts.com' }),
    { description: 'Public URL used in links handed to workers and CLIs (the local all-in-one uses its own address)' },
  ),
  requestTimeoutMs: fromEnv('PERRY_HUB_REQUEST_TIMEOUT_MS', Type.Integer({ minimum: 1000, default: 600_000 }), {
    description: 'Longest an HTTP request (including a large upload) may take',
  }),
  headersTimeoutMs: fromEnv('PERRY_HUB_HEADERS_TIMEOUT_MS', Type.Integer({ minimum: 1000, default: 15_000 }), {
    description: 'Longest a client may take to send its request headers (slowloris guard)',
  }),
});
export type IngestConfig = Static<typeof IngestConfig>;
