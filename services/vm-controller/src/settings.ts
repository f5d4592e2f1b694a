/**
 * From the flat environment config to what the controller uses: the provider, the pools
 * (capability to VM) and the timings. Every cross-field problem is collected and reported at
 * once, naming the variable and, for a bad pool entry, the entry.
 */
import { ConfigError } from '@perry-hub/runtime';
import type { VmProviderKind } from '@perry-hub/contracts';
import type { VmControllerConfig } from './config.js';

export interface PoolSpec {
  /** Pool name; equal to the capability its workers advertise (e.g. windows-sign). */
  readonly pool: string;
  readonly capability: string;
  /** Provider-specific: `<resource-group>/<vm-name>` for azure, free text for command. */
  readonly target: string;
}

export interface Timings {
  readonly idleMs: number;
  readonly drainCheckMs: number;
  readonly queueStaleMs: number;
  readonly stuckStartMs: number;
  readonly prewarmTtlMs: number;
  readonly backoffMs: number;
  readonly backoffMaxMs: number;
  readonly bootEstimateSecs: number;
}

export interface Settings {
  readonly provider: VmProviderKind;
  readonly pools: readonly PoolSpec[];
  readonly timings: Timings;
}

export const DEFAULT_POOL = 'windows-sign';
const CAPABILITY = /^[a-z0-9][a-z0-9_-]{0,63}$/;
const AZURE_NAME = /^[A-Za-z0-9._()-]{1,90}$/;

function chooseProvider(config: VmControllerConfig): VmProviderKind {
  if (config.provider !== 'auto') return config.provider;
  return config.azureSubscriptionId !== '' && config.azureVmName !== '' ? 'azure' : 'none';
}

function parsePools(raw: string, problems: string[]): PoolSpec[] {
  const pools: PoolSpec[] = [];
  const entries = raw.split(',').map((e) => e.trim());
  if (raw.trim() === '') return pools;
  entries.forEach((entry, index) => {
    const where = `PERRY_HUB_VM_POOLS entry ${index + 1} (${JSON.stringify(entry)})`;
    if (entry === '') return problems.push(`${where} is empty (a stray comma?)`);
    const eq = entry.indexOf('=');
    const capability = (eq < 0 ? entry : entry.slice(0, eq)).trim();
    const target = eq < 0 ? '' : entry.slice(eq + 1).trim();
    if (!CAPABILITY.test(capability)) {
      return problems.push(`${where}: the capability must be lower-case letters, digits, - or _ (e.g. macos-sign)`);
    }
    if (pools.some((p) => p.capability === capability)) return problems.push(`${where}: ${capability} is listed twice`);
    pools.push({ pool: capability, capability, target });
  });
  return pools;
}

function checkAzureTarget(pool: PoolSpec, config: VmControllerConfig, problems: string[]): PoolSpec {
  const parts = pool.target === '' ? [] : pool.target.split('/');
  const [group, vm] = parts.length === 2 ? parts : [config.azureResourceGroup, parts[0] ?? ''];
  if (parts.length > 2 || vm === '' || !AZURE_NAME.test(vm ?? '')) {
    problems.push(`PERRY_HUB_VM_POOLS ${pool.pool}: an azure target is <resource-group>/<vm-name> or <vm-name>`);
  } else if (!group || !AZURE_NAME.test(group)) {
    problems.push(
      `PERRY_HUB_VM_POOLS ${pool.pool}: no resource group (give <resource-group>/<vm-name> or set AZURE_VM_RESOURCE_GROUP)`,
    );
  }
  return { ...pool, target: `${group ?? ''}/${vm ?? ''}` };
}

/** Validate and combine; throws ConfigError listing every problem. */
export function resolveSettings(config: VmControllerConfig): Settings {
  const problems: string[] = [];
  const provider = chooseProvider(config);
  let pools = parsePools(config.pools, problems);

  if (!pools.some((p) => p.pool === DEFAULT_POOL)) {
    const target = provider === 'azure' ? config.azureVmName : config.azureVmName || DEFAULT_POOL;
    if (provider !== 'azure' || target !== '') pools.unshift({ pool: DEFAULT_POOL, capability: DEFAULT_POOL, target });
  }

  if (provider === 'azure') {
    if (config.azureSubscriptionId === '') problems.push('AZURE_SUBSCRIPTION_ID is required with the azure provider');
    if (pools.length === 0) problems.push('AZURE_VM_NAME (or PERRY_HUB_VM_POOLS) must name at least one VM');
    if (config.azureClientSecret !== '' && (config.azureTenantId === '' || config.azureClientId === '')) {
      problems.push('AZURE_CLIENT_SECRET is set, so AZURE_TENANT_ID and AZURE_CLIENT_ID are required too');
    }
    pools = pools.map((p) => checkAzureTarget(p, config, problems));
  }
  if (provider === 'command') {
    for (const [name, value] of [
      ['PERRY_HUB_VM_START_COMMAND', config.startCommand],
      ['PERRY_HUB_VM_STOP_COMMAND', config.stopCommand],
      ['PERRY_HUB_VM_STATUS_COMMAND', config.statusCommand],
    ] as const) {
      if (value.trim() === '') problems.push(`${name} is required with the command provider`);
    }
  }
  if (config.backoffMaxMs < config.backoffMs) {
    problems.push('PERRY_HUB_VM_BACKOFF_MAX_MS must not be smaller than PERRY_HUB_VM_BACKOFF_MS');
  }
  if (problems.length > 0) throw new ConfigError(problems);

  return {
    provider,
    pools,
    timings: {
      idleMs: config.idleMs > 0 ? config.idleMs : config.idleMins * 60_000,
      drainCheckMs: config.drainCheckMs,
      queueStaleMs: config.queueStaleMs,
      stuckStartMs: config.stuckStartMs,
      prewarmTtlMs: config.prewarmTtlMs,
      backoffMs: config.backoffMs,
      backoffMaxMs: config.backoffMaxMs,
      bootEstimateSecs: config.bootEstimateSecs,
    },
  };
}
