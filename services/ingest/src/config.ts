import Type, { type Static } from 'typebox';
import {
  configSchema,
  publicUrlFields,
  sealKeyFields,
  dbFields,
  addressListFromEnv,
  fromEnv,
  natsFields,
  processFields,
  storageFields,
} from '@perry-hub/runtime';

import { abuseFields } from './abuse/config.js';

const MiB = 1024 * 1024;

export const IngestConfig = configSchema({
  ...natsFields,
  ...dbFields,
  ...processFields,
  ...storageFields,
  httpPort: fromEnv('PERRY_HUB_HTTP_PORT', Type.Integer({ minimum: 0, maximum: 65535, default: 3456 }), {
    description: 'HTTP port of the public API (0 picks a free port)',
  }),
  httpHost: fromEnv('PERRY_HUB_HTTP_HOST', Type.String({ minLength: 1, default: '0.0.0.0' }), {
    description: 'Address the HTTP server binds to',
  }),
  ...publicUrlFields,
  requestTimeoutMs: fromEnv('PERRY_HUB_REQUEST_TIMEOUT_MS', Type.Integer({ minimum: 1000, default: 600_000 }), {
    description: 'Longest an HTTP request (including a large upload) may take',
  }),
  headersTimeoutMs: fromEnv('PERRY_HUB_HEADERS_TIMEOUT_MS', Type.Integer({ minimum: 1000, default: 15_000 }), {
    description: 'Longest a client may take to send its request headers (slowloris guard)',
  }),
  idleTimeoutMs: fromEnv('PERRY_HUB_IDLE_TIMEOUT_MS', Type.Integer({ minimum: 1000, default: 60_000 }), {
    description: 'A connection that sends nothing for this long (e.g. a stalled upload) is closed',
  }),
  keepAliveTimeoutMs: fromEnv('PERRY_HUB_KEEP_ALIVE_TIMEOUT_MS', Type.Integer({ minimum: 1000, default: 72_000 }), {
    description:
      'How long a connection is kept open between requests for its client to reuse (sent as `Keep-Alive: timeout`); keep it above the idle timeout of a proxy in front of the hub (60 s for nginx and AWS load balancers), or the proxy may send a request on a connection the hub is closing',
  }),
  adminSecret: fromEnv('PERRY_HUB_ADMIN_SECRET', Type.String({ default: '' }), {
    description:
      'Bearer secret of the admin and dashboard routes; when empty those routes refuse every request (the local all-in-one generates one)',
    secret: true,
  }),
  ...sealKeyFields,
  maxFieldBytes: fromEnv('PERRY_HUB_MAX_FIELD_BYTES', Type.Integer({ minimum: 1024, default: 1 * MiB }), {
    description: 'Largest text part of a build submission (manifest, credentials, license_key)',
  }),
  maxArtifactBytes: fromEnv('PERRY_HUB_MAX_ARTIFACT_BYTES', Type.Integer({ minimum: 1024, default: 2 * 1024 * MiB }), {
    description: 'Largest artifact a worker may upload (decoded bytes)',
  }),
  sessionSecs: fromEnv('PERRY_HUB_SESSION_SECS', Type.Integer({ minimum: 60, maximum: 2_592_000, default: 28_800 }), {
    description: 'How long a dashboard sign-in lasts (its session cookie expires then)',
  }),
  dashboardDir: fromEnv('PERRY_HUB_DASHBOARD_DIR', Type.String({ default: '' }), {
    description:
      'Directory of the built dashboard served at /ui/; empty: the one `npm run build` makes (apps/dashboard/dist)',
  }),
  ...abuseFields,
  callbackAllowedAddresses: addressListFromEnv(
    'PERRY_HUB_CALLBACK_ALLOWED_ADDRESSES',
    'Comma-separated addresses or CIDR ranges a callback_url may reach although they are not public (loopback, private, link-local); empty allows only public addresses',
  ),
  callbackMaxAttempts: fromEnv('PERRY_HUB_CALLBACK_MAX_ATTEMPTS', Type.Integer({ minimum: 1, default: 10 }), {
    description: 'Attempts of one signed callback before it is recorded as failed',
  }),
  callbackBackoffBaseMs: fromEnv('PERRY_HUB_CALLBACK_BACKOFF_BASE_MS', Type.Integer({ minimum: 10, default: 30_000 }), {
    description:
      'Wait before the 2nd attempt of a callback; doubled for each further one (the defaults: 30 s, 1, 2, 4, 8, 16, 32, 64 min, 2 h, about 4 h 15 min in all)',
  }),
  callbackBackoffMaxMs: fromEnv(
    'PERRY_HUB_CALLBACK_BACKOFF_MAX_MS',
    Type.Integer({ minimum: 10, default: 7_200_000 }),
    {
      description: 'Longest wait between two attempts of a callback',
    },
  ),
  callbackTimeoutMs: fromEnv('PERRY_HUB_CALLBACK_TIMEOUT_MS', Type.Integer({ minimum: 100, default: 30_000 }), {
    description: 'An attempt whose receiver has not answered in this time fails (and is retried)',
  }),
  resubmitWindowSecs: fromEnv('PERRY_HUB_RESUBMIT_WINDOW_SECS', Type.Integer({ minimum: 0, default: 3600 }), {
    description:
      'A submission identical to one accepted (or finished) this recently whose result was not delivered yet (queued, running, or artifacts not downloaded) gets that job instead of a new build; 0 turns this off',
  }),
});
export type IngestConfig = Static<typeof IngestConfig>;
