/** Configuration shared by several services. Names of the original hub keep their defaults. */
import Type from 'typebox';
import { DEFAULT_SUBJECT_PREFIX, DEFAULT_TOPOLOGY_LIMITS, SUBJECT_PREFIX_PATTERN } from '@perry-hub/contracts';
import { fromEnv, parsedFromEnv } from './config.js';
import { LOG_FORMATS } from './logger.js';
import { parseSealKeys, type SealKey } from './sealed.js';

export const natsFields = {
  natsUrl: fromEnv('PERRY_HUB_NATS_URL', Type.String({ minLength: 1, default: 'nats://127.0.0.1:4222' }), {
    description: 'NATS server URL(s), comma-separated',
  }),
  natsCredentialsDir: fromEnv('PERRY_HUB_NATS_CREDENTIALS_DIR', Type.String({ default: '' }), {
    description:
      'Directory of NKEY seed files, one `<service>.nk` per service (mode 0600): each service connects as its own ' +
      'user (see `perry-hub nats-config`). Instead of PERRY_HUB_NATS_USER/PASSWORD',
  }),
  natsUser: fromEnv('PERRY_HUB_NATS_USER', Type.String({ default: '' }), {
    description: 'NATS user name (one user for every service; prefer PERRY_HUB_NATS_CREDENTIALS_DIR)',
  }),
  natsPassword: fromEnv('PERRY_HUB_NATS_PASSWORD', Type.String({ default: '' }), {
    description: 'NATS password',
    secret: true,
  }),
  natsTlsCaFile: fromEnv('PERRY_HUB_NATS_TLS_CA_FILE', Type.String({ default: '' }), {
    description: "CA certificate (PEM) that signed the NATS servers' certificates; set, connections use TLS",
  }),
  natsTlsCertFile: fromEnv('PERRY_HUB_NATS_TLS_CERT_FILE', Type.String({ default: '' }), {
    description: 'Client certificate (PEM) for NATS servers that verify clients (with PERRY_HUB_NATS_TLS_KEY_FILE)',
  }),
  natsTlsKeyFile: fromEnv('PERRY_HUB_NATS_TLS_KEY_FILE', Type.String({ default: '' }), {
    description: 'Private key (PEM) of PERRY_HUB_NATS_TLS_CERT_FILE',
    secret: true,
  }),
  jsReplicas: fromEnv('PERRY_HUB_JS_REPLICAS', Type.Integer({ minimum: 1, maximum: 5, default: 1 }), {
    description:
      'Replicas of every JetStream stream, KV bucket and object store (3 on a three-node cluster); applied when a ' +
      'service starts, raising existing ones, never lowering them',
  }),
  subjectPrefix: fromEnv(
    'PERRY_HUB_SUBJECT_PREFIX',
    Type.String({ pattern: SUBJECT_PREFIX_PATTERN, default: DEFAULT_SUBJECT_PREFIX }),
    { description: 'Prefix of every subject, stream and bucket (lets hubs share a NATS server)' },
  ),
};

export const dbFields = {
  dbHost: fromEnv('PERRY_DB_HOST', Type.String({ minLength: 1, default: 'localhost' }), { description: 'MySQL host' }),
  dbPort: fromEnv('PERRY_DB_PORT', Type.Integer({ minimum: 1, maximum: 65535, default: 3306 }), {
    description: 'MySQL port',
  }),
  dbUser: fromEnv('PERRY_DB_USER', Type.String({ minLength: 1, default: 'perry' }), { description: 'MySQL user' }),
  dbPassword: fromEnv('PERRY_DB_PASSWORD', Type.String({ default: '' }), {
    description: 'MySQL password',
    secret: true,
  }),
  dbName: fromEnv('PERRY_DB_NAME', Type.String({ pattern: '^[A-Za-z0-9_]{1,64}$', default: 'perry_hub' }), {
    description: 'MySQL database name',
  }),
  dbPoolSize: fromEnv('PERRY_DB_POOL_SIZE', Type.Integer({ minimum: 1, maximum: 200, default: 10 }), {
    description:
      "MySQL connections per service instance. Each keeps the statements every build runs prepared (nine, at most 64), which counts against MySQL's `max_prepared_stmt_count` (16,382 by default)",
  }),
};

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

export const processFields = {
  logLevel: fromEnv('PERRY_HUB_LOG_LEVEL', Type.Enum(LOG_LEVELS, { default: 'info' }), {
    description: 'Log level: fatal, error, warn, info, debug, trace or silent',
  }),
  logFormat: fromEnv('PERRY_HUB_LOG_FORMAT', Type.Enum(LOG_FORMATS, { default: 'auto' }), {
    description:
      'Log format: pretty (coloured, for a terminal), json (one object a line), or auto: pretty when stdout is a terminal, json otherwise',
  }),
  shutdownGraceMs: fromEnv('PERRY_HUB_SHUTDOWN_GRACE_MS', Type.Integer({ minimum: 0, default: 10_000 }), {
    description: 'How long an orderly shutdown may take before connections are closed by force',
  }),
  instanceTtlMs: fromEnv('PERRY_HUB_INSTANCE_TTL_MS', Type.Integer({ minimum: 300, default: 5_000 }), {
    description:
      "An instance's liveness record expires this long after its last refresh: a dead gateway's workers and jobs are released then",
  }),
  shutdownForceMs: fromEnv('PERRY_HUB_SHUTDOWN_FORCE_MS', Type.Integer({ minimum: 0, default: 5_000 }), {
    description: 'After the grace period, how long forced closing may take before the process exits',
  }),
  metricsPort: fromEnv('PERRY_HUB_METRICS_PORT', Type.Integer({ minimum: 0, maximum: 65535, default: 0 }), {
    description:
      'Port of /metrics, /healthz and /readyz for a process without the ingest (a service run alone); 0: off. The ingest serves them on its HTTP port',
  }),
  metricsHost: fromEnv('PERRY_HUB_METRICS_HOST', Type.String({ minLength: 1, default: '0.0.0.0' }), {
    description: 'Address the PERRY_HUB_METRICS_PORT server binds to',
  }),
  eventLoopSampleMs: fromEnv('PERRY_HUB_EVENT_LOOP_SAMPLE_MS', Type.Integer({ minimum: 1, default: 1_000 }), {
    description:
      'How often the event-loop delay behind nodejs_eventloop_lag_* is sampled: each sample wakes the process, so a finer one costs idle CPU (20 ms: 50 wake-ups a second)',
  }),
};

/** Absolute links handed to workers (tarball, upload) and CLIs (downloads) start with this. */
export const publicUrlFields = {
  publicUrl: fromEnv(
    'PERRY_HUB_PUBLIC_URL',
    Type.String({ pattern: '^https?://[^\\s/]+(/[^\\s]*)?$', default: 'https://hub.perryts.com' }),
    { description: 'Public URL used in links handed to workers and CLIs (the local all-in-one uses its own address)' },
  ),
};

/** The keys of sealed signing credentials: the ingest seals with the first, the gateway opens with any. */
export const sealKeyFields = {
  sealKeys: parsedFromEnv<readonly SealKey[]>('PERRY_HUB_CREDENTIALS_KEY', Type.String({ default: '' }), {
    description:
      'Base64 of a 32-byte AES-256-GCM key that seals signing credentials at intake (comma-separated: the first seals, all open); while empty, builds are refused (the local all-in-one generates one)',
    secret: true,
    expected: 'comma-separated keys, each the base64 of 32 bytes (e.g. from `openssl rand -base64 32`)',
    parse: (text) => (text === '' ? [] : parseSealKeys(text)),
  }),
};

/**
 * Sizes of the shared JetStream storage, applied by the topology ensure of every service that
 * uses the stream or bucket; give all of them the same values.
 */
export const storageFields = {
  blobsMaxBytes: fromEnv(
    'PERRY_HUB_BLOBS_MAX_BYTES',
    Type.Integer({ minimum: 1024 * 1024, default: DEFAULT_TOPOLOGY_LIMITS.blobsMaxBytes }),
    {
      description:
        'Largest total size of the tarball and artifact store (Object Store <p>-blobs); when full, uploads are refused with 507 until builds finish and their objects are removed',
    },
  ),
  eventsMaxBytes: fromEnv(
    'PERRY_HUB_EVENTS_MAX_BYTES',
    Type.Integer({ minimum: 1024 * 1024, default: DEFAULT_TOPOLOGY_LIMITS.eventsMaxBytes }),
    {
      description: 'Largest total size of the job event log (stream <P>_EVENTS); when full, the oldest events go first',
    },
  ),
};
