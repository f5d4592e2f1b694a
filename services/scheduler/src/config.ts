import Type, { type Static } from 'typebox';
import {
  configSchema,
  publicUrlFields,
  dbFields,
  fromEnv,
  natsFields,
  processFields,
  storageFields,
} from '@perry-hub/runtime';

const ms = (env: string, defaultMs: number, description: string, minimum = 1) =>
  fromEnv(env, Type.Integer({ minimum, default: defaultMs }), { description });

export const SchedulerConfig = configSchema({
  ...natsFields,
  ...dbFields,
  ...processFields,
  ...storageFields,
  ...publicUrlFields,
  selfHosted: fromEnv('PERRY_HUB_SELF_HOSTED', Type.Boolean({ default: false }), {
    description: 'true disables rate limits, quotas and per-license concurrency limits',
  }),
  agingStepMs: ms(
    'PERRY_HUB_AGING_STEP_MS',
    60_000,
    'Queue aging: one priority point per this much waiting (a free build overtakes pro builds 9 steps newer)',
  ),
  maxRetries: fromEnv('PERRY_HUB_MAX_RETRIES', Type.Integer({ minimum: 0, maximum: 20, default: 3 }), {
    description: 'Re-queues of a job whose worker disconnected, before it fails',
  }),
  compileTimeoutMs: ms('PERRY_HUB_COMPILE_TIMEOUT_MS', 3_600_000, 'Longest a build (first) stage may run'),
  signTimeoutMs: ms('PERRY_HUB_SIGN_TIMEOUT_MS', 900_000, 'Longest a signing stage may run'),
  noOutputTimeoutMs: ms('PERRY_HUB_NO_OUTPUT_TIMEOUT_MS', 900_000, 'A running build silent for this long is stopped'),
  queueExpiryMs: ms('PERRY_HUB_QUEUE_EXPIRY_MS', 86_400_000, 'A job no worker could take for this long fails'),
  cancelGraceMs: ms('PERRY_HUB_CANCEL_GRACE_MS', 60_000, 'How long a cancelled running job may take to stop'),
  workerLostMs: ms('PERRY_HUB_WORKER_LOST_MS', 60_000, 'A worker silent for this long is lost and its jobs re-queued'),
  reclaimWaitMs: ms(
    'PERRY_HUB_RECLAIM_WAIT_MS',
    10_000,
    'After a hub restart, a gateway crash or a lost connection, how long a running build waits at most for its worker to reconnect and go on with it (same attempt) before another worker gets it; 0 disables the wait',
    0,
  ),
  reclaimSilentMs: ms(
    'PERRY_HUB_RECLAIM_SILENT_MS',
    5_000,
    'The wait ends sooner once the worker has been back this long without a word about the build (it ended while the worker was away)',
  ),
  leaseTtlMs: ms(
    'PERRY_HUB_SCHEDULER_LEASE_MS',
    6_000,
    'Dispatch lease: a standby scheduler takes over after it expires',
  ),
  depthIntervalMs: ms('PERRY_HUB_QUEUE_DEPTH_INTERVAL_MS', 5_000, 'Queue depth is published on change and this often'),
  verifyEnabled: fromEnv('PERRY_HUB_VERIFY_ENABLED', Type.Boolean({ default: false }), {
    description: "The original's verification gate before distribution (build_complete); off by default",
  }),
  verifyUrl: fromEnv('PERRY_VERIFY_URL', Type.String({ default: 'http://localhost:7777' }), {
    description: 'perry-verify service used by the verification gate',
  }),
  verifyPollMs: ms('PERRY_HUB_VERIFY_POLL_MS', 5_000, 'How often the verification gate polls perry-verify'),
  verifyTimeoutMs: ms('PERRY_HUB_VERIFY_TIMEOUT_MS', 120_000, 'How long the verification gate waits for a verdict'),
});
export type SchedulerConfig = Static<typeof SchedulerConfig>;
