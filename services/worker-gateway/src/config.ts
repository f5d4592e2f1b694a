import Type, { type Static } from 'typebox';
import {
  addressListFromEnv,
  configSchema,
  fromEnv,
  natsFields,
  processFields,
  sealKeyFields,
  storageFields,
} from '@perry-hub/runtime';

const MIB = 1024 * 1024;

export const WorkerGatewayConfig = configSchema({
  ...natsFields,
  ...processFields,
  ...storageFields,
  wsPort: fromEnv('PERRY_HUB_WS_PORT', Type.Integer({ minimum: 0, maximum: 65535, default: 3457 }), {
    description: 'WebSocket port for workers and CLIs, any path (0 picks a free port)',
  }),
  wsHost: fromEnv('PERRY_HUB_WS_HOST', Type.String({ minLength: 1, default: '0.0.0.0' }), {
    description: 'Address the WebSocket server binds to',
  }),
  workerSecret: fromEnv('PERRY_HUB_WORKER_SECRET', Type.String({ default: '' }), {
    description: 'Secret workers present in worker_hello (empty: any worker is accepted, with a warning)',
    secret: true,
  }),
  ...sealKeyFields,
  expectedPerryVersion: fromEnv('PERRY_EXPECTED_VERSION', Type.String({ default: '' }), {
    description: 'Perry compiler version workers should run; a worker reporting another is told to update',
  }),
  maxPayloadBytes: fromEnv('PERRY_HUB_WS_MAX_PAYLOAD_BYTES', Type.Integer({ minimum: 1024, default: MIB }), {
    description: 'Largest WebSocket message accepted; a bigger one closes the connection (1009)',
  }),
  maxBufferedBytes: fromEnv('PERRY_HUB_WS_MAX_BUFFERED_BYTES', Type.Integer({ minimum: 1024, default: 4 * MIB }), {
    description: 'Unsent bytes a connection may hold before its reader counts as slow',
  }),
  slowReaderMs: fromEnv('PERRY_HUB_WS_SLOW_READER_MS', Type.Integer({ minimum: 0, default: 10_000 }), {
    description: 'How long a CLI may stay above the buffer limit before it is disconnected',
  }),
  pingIntervalMs: fromEnv('PERRY_HUB_WS_PING_INTERVAL_MS', Type.Integer({ minimum: 100, default: 20_000 }), {
    description: 'Interval of the WebSocket pings the hub sends on every connection',
  }),
  workerLostMs: fromEnv('PERRY_HUB_WORKER_LOST_MS', Type.Integer({ minimum: 200, default: 60_000 }), {
    description: 'A connection silent this long (no message, ping or pong) is closed and its worker lost',
  }),
  presenceRefreshMs: fromEnv('PERRY_HUB_PRESENCE_REFRESH_MS', Type.Integer({ minimum: 100, default: 600_000 }), {
    description:
      "How often a connected worker's unchanged presence entry is rewritten anyway. A backstop: an entry is rewritten at once when its worker's slots or jobs change, and while its gateway's liveness record is fresh, readers take that as the worker's heartbeat (so idle workers cost no bus traffic)",
  }),
  updateCooldownMs: fromEnv('PERRY_HUB_UPDATE_COOLDOWN_MS', Type.Integer({ minimum: 0, default: 900_000 }), {
    description: 'update_perry is not resent to the same worker name within this time (no update storms)',
  }),
  schedulerRetryMs: fromEnv('PERRY_HUB_SCHEDULER_RETRY_MS', Type.Integer({ minimum: 0, default: 60_000 }), {
    description: "How long a worker's complete/error is retried while the scheduler is unavailable",
  }),
  activityIntervalMs: fromEnv('PERRY_HUB_ACTIVITY_INTERVAL_MS', Type.Integer({ minimum: 100, default: 5_000 }), {
    description: "Interval of the job activity batches that feed the scheduler's no-output watchdog",
  }),
  maxQueuedMessages: fromEnv('PERRY_HUB_WORKER_MAX_QUEUED', Type.Integer({ minimum: 16, default: 10_000 }), {
    description: 'Worker messages waiting for the bus before the gateway stops reading that socket',
  }),
  // Limits of the WebSocket edge: what one address, one watcher, one job and one worker may cost.
  maxConnectionsPerAddress: fromEnv(
    'PERRY_HUB_WS_MAX_CONNECTIONS_PER_ADDRESS',
    Type.Integer({ minimum: 1, default: 32 }),
    {
      description:
        'Open WebSocket connections one client address may hold on a gateway instance (IPv6: per /64); more are refused with HTTP 429',
    },
  ),
  trustedProxies: addressListFromEnv(
    'PERRY_HUB_WS_TRUSTED_PROXIES',
    'Reverse proxies (comma-separated IP addresses or CIDR ranges) whose connections are counted by the X-Forwarded-For client address instead of their own',
  ),
  maxWatcherFrames: fromEnv('PERRY_HUB_WS_MAX_WATCHER_FRAMES', Type.Integer({ minimum: 1, default: 8 }), {
    description: 'Frames a watcher may send on one connection (the CLI sends one subscribe); more close it (1008)',
  }),
  maxWatchersPerJob: fromEnv('PERRY_HUB_WS_MAX_WATCHERS_PER_JOB', Type.Integer({ minimum: 1, default: 16 }), {
    description: 'Sockets watching one job on a gateway instance; a further subscribe gets RATE_LIMITED and is closed',
  }),
  jobStatusCacheMs: fromEnv('PERRY_HUB_WS_JOB_STATUS_CACHE_MS', Type.Integer({ minimum: 0, default: 1_000 }), {
    description: "How long a job's status, asked once for all its concurrent subscribers, answers further subscribes",
  }),
  watchStallCheckMs: fromEnv('PERRY_HUB_WS_WATCH_STALL_CHECK_MS', Type.Integer({ minimum: 100, default: 15_000 }), {
    description:
      "A watch that delivered nothing for this long asks for the job log's last entry (one request); when that entry is newer than what it delivered and older than this, its consumer is taken as lost and the CLI is closed to reconnect",
  }),
  workerMessagesPerSec: fromEnv('PERRY_HUB_WORKER_MESSAGES_PER_SEC', Type.Integer({ minimum: 1, default: 1_000 }), {
    description:
      'Sustained frames per second one worker may send; over its budget its progress and log messages are dropped (complete and error always pass) and counted in the log',
  }),
  workerBurstMessages: fromEnv('PERRY_HUB_WORKER_BURST_MESSAGES', Type.Integer({ minimum: 1, default: 10_000 }), {
    description: 'Frames a worker may send at once above its sustained rate (a compiler burst)',
  }),
  workerBytesPerSec: fromEnv('PERRY_HUB_WORKER_BYTES_PER_SEC', Type.Integer({ minimum: 1024, default: MIB }), {
    description: 'Sustained bytes per second one worker may send, counted like PERRY_HUB_WORKER_MESSAGES_PER_SEC',
  }),
  workerBurstBytes: fromEnv('PERRY_HUB_WORKER_BURST_BYTES', Type.Integer({ minimum: 1024, default: 8 * MIB }), {
    description: 'Bytes a worker may send at once above its sustained rate',
  }),
  logSummaryMs: fromEnv('PERRY_HUB_WS_LOG_SUMMARY_MS', Type.Integer({ minimum: 100, default: 10_000 }), {
    description:
      'Refused connections, bad frames and dropped worker messages are logged once per kind, then counted in one summary line per interval',
  }),
});
export type WorkerGatewayConfig = Static<typeof WorkerGatewayConfig>;
