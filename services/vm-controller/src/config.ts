/**
 * The vm-controller's environment. The six AZURE_* names and the idle time are the original
 * hub's; the rest are new. Cross-field rules (which provider needs what, the pool list) are
 * checked in settings.ts, which turns this flat config into what the controller uses.
 */
import Type, { type Static } from 'typebox';
import { configSchema, fromEnv, natsFields, processFields } from '@perry-hub/runtime';

const HTTPS_URL_OR_EMPTY = '^(https://[^\\s/]+(/[^\\s]*)?)?$';

const ms = (name: string, defaultMs: number, minimum: number, description: string) =>
  fromEnv(name, Type.Integer({ minimum, default: defaultMs }), { description });

export const VmControllerConfig = configSchema({
  ...natsFields,
  ...processFields,
  provider: fromEnv('PERRY_HUB_VM_PROVIDER', Type.Enum(['auto', 'azure', 'command', 'none'], { default: 'auto' }), {
    description:
      'How sign VMs are started and stopped: azure, command (shell commands) or none (disabled). ' +
      'auto = azure when AZURE_SUBSCRIPTION_ID and AZURE_VM_NAME are set, otherwise none',
  }),
  pools: fromEnv('PERRY_HUB_VM_POOLS', Type.String({ default: '' }), {
    description:
      'Extra pools, comma-separated <capability>=<target> (e.g. macos-sign=mac-rg/mac-signer). For azure the ' +
      'target is <resource-group>/<vm-name> or <vm-name> (in AZURE_VM_RESOURCE_GROUP); for command it is passed to ' +
      'the commands as PERRY_HUB_VM_TARGET. The windows-sign pool comes from AZURE_VM_NAME unless listed here',
  }),
  azureTenantId: fromEnv('AZURE_TENANT_ID', Type.String({ default: '' }), {
    description: 'Azure AD tenant of the service principal (for auto-starting the sign VM)',
  }),
  azureClientId: fromEnv('AZURE_CLIENT_ID', Type.String({ default: '' }), {
    description: 'Service principal client id; without AZURE_CLIENT_SECRET, the user-assigned managed identity to use',
  }),
  azureClientSecret: fromEnv('AZURE_CLIENT_SECRET', Type.String({ default: '' }), {
    description: 'Service principal secret; when empty, DefaultAzureCredential is used (e.g. a managed identity)',
    secret: true,
  }),
  azureSubscriptionId: fromEnv('AZURE_SUBSCRIPTION_ID', Type.String({ default: '' }), {
    description: 'Subscription holding the sign VMs',
  }),
  azureResourceGroup: fromEnv('AZURE_VM_RESOURCE_GROUP', Type.String({ default: '' }), {
    description: 'Resource group of the Windows sign VM (and default for other pools)',
  }),
  azureVmName: fromEnv('AZURE_VM_NAME', Type.String({ default: '' }), {
    description: 'Name of the Windows sign VM (the windows-sign pool)',
  }),
  azureAuthorityHost: fromEnv('AZURE_AUTHORITY_HOST', Type.String({ pattern: HTTPS_URL_OR_EMPTY, default: '' }), {
    description: 'Token authority (default https://login.microsoftonline.com); for other clouds and for tests',
  }),
  azureResourceManagerUrl: fromEnv(
    'AZURE_RESOURCE_MANAGER_URL',
    Type.String({ pattern: HTTPS_URL_OR_EMPTY, default: '' }),
    {
      description: 'Azure Resource Manager endpoint (default https://management.azure.com); for other clouds and tests',
    },
  ),
  azurePollMs: ms('PERRY_HUB_VM_AZURE_POLL_MS', 5_000, 10, 'How often a running Azure start/deallocate is polled'),
  azureRetryDelayMs: ms(
    'PERRY_HUB_VM_AZURE_RETRY_DELAY_MS',
    1_000,
    1,
    'First delay of the Azure SDK retrying a 429/5xx answer (doubling, 3 retries; Retry-After wins)',
  ),
  startCommand: fromEnv('PERRY_HUB_VM_START_COMMAND', Type.String({ default: '' }), {
    description: 'command provider: shell command that starts a pool VM (env PERRY_HUB_VM_POOL, _CAPABILITY, _TARGET)',
  }),
  stopCommand: fromEnv('PERRY_HUB_VM_STOP_COMMAND', Type.String({ default: '' }), {
    description: 'command provider: shell command that stops (deallocates) a pool VM',
  }),
  statusCommand: fromEnv('PERRY_HUB_VM_STATUS_COMMAND', Type.String({ default: '' }), {
    description: 'command provider: prints running, starting, stopping, stopped or deallocated',
  }),
  commandTimeoutMs: ms('PERRY_HUB_VM_COMMAND_TIMEOUT_MS', 300_000, 100, 'command provider: longest a command may run'),
  idleMins: fromEnv('PERRY_HUB_VM_IDLE_MINS', Type.Integer({ minimum: 1, default: 30 }), {
    description: 'Minutes a pool must be idle after its last job before its VM is deallocated',
  }),
  idleMs: ms('PERRY_HUB_VM_IDLE_MS', 0, 0, 'Idle time in ms, overriding PERRY_HUB_VM_IDLE_MINS when > 0 (tests, ops)'),
  reconcileMs: ms('PERRY_HUB_VM_RECONCILE_MS', 60_000, 50, 'How often each VM power state is read from the cloud'),
  tickMs: ms('PERRY_HUB_VM_TICK_MS', 1_000, 10, 'How often time-based decisions (idle, stuck) are re-evaluated'),
  drainCheckMs: ms(
    'PERRY_HUB_VM_DRAIN_CHECK_MS',
    10_000,
    0,
    'After marking a pool draining, how long to wait for a fresh queue depth before deallocating',
  ),
  queueStaleMs: ms(
    'PERRY_HUB_VM_QUEUE_STALE_MS',
    30_000,
    100,
    'A queue depth older than this counts as unknown (never deallocate on unknown)',
  ),
  stuckStartMs: ms('PERRY_HUB_VM_STUCK_START_MS', 900_000, 100, 'A start taking longer raises an alert and is retried'),
  prewarmTtlMs: ms('PERRY_HUB_VM_PREWARM_TTL_MS', 1_800_000, 100, 'How long a pre-warm hint keeps a VM wanted at most'),
  backoffMs: ms('PERRY_HUB_VM_BACKOFF_MS', 5_000, 1, 'First delay after a failed cloud call (doubling)'),
  backoffMaxMs: ms('PERRY_HUB_VM_BACKOFF_MAX_MS', 300_000, 1, 'Longest delay between retries of a failing cloud call'),
  leaseTtlMs: ms('PERRY_HUB_VM_LEASE_TTL_MS', 15_000, 100, 'Lease that lets exactly one vm-controller instance act'),
  bootEstimateSecs: fromEnv('PERRY_HUB_VM_BOOT_ESTIMATE_SECS', Type.Integer({ minimum: 1, default: 90 }), {
    description: 'Boot time quoted to waiting users ("takes about 90 s")',
  }),
});
export type VmControllerConfig = Static<typeof VmControllerConfig>;
