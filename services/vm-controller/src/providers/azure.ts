/**
 * The azure provider: `@azure/arm-compute` with `@azure/identity`, as the original hub's
 * `startAzureSignVm` but through the SDK, with long-running-operation polling and the SDK's
 * retries (429 with Retry-After, 5xx with exponential backoff). A service principal secret gives
 * a ClientSecretCredential; without one, DefaultAzureCredential (a managed identity on the host,
 * AZURE_CLIENT_ID choosing a user-assigned one).
 *
 * AZURE_AUTHORITY_HOST and AZURE_RESOURCE_MANAGER_URL point the real code path elsewhere: at a
 * private cloud, or at the test suite's local fake. A custom authority disables instance
 * discovery, which only knows Microsoft's public authorities.
 */
import { ComputeManagementClient } from '@azure/arm-compute';
import { ClientSecretCredential, DefaultAzureCredential, type TokenCredential } from '@azure/identity';
import type { VmPowerState } from '@perry-hub/contracts';
import type { PoolSpec } from '../settings.js';
import { ProviderError, powerFromWord, type VmProvider } from './types.js';

export interface AzureProviderOptions {
  tenantId: string;
  clientId: string;
  clientSecret: string;
  subscriptionId: string;
  authorityHost: string;
  resourceManagerUrl: string;
  pollMs: number;
  retryDelayMs: number;
}

const SDK_MAX_RETRIES = 3;

function credentialFor(o: AzureProviderOptions): TokenCredential {
  const authority = o.authorityHost === '' ? {} : { authorityHost: o.authorityHost, disableInstanceDiscovery: true };
  if (o.clientSecret !== '') return new ClientSecretCredential(o.tenantId, o.clientId, o.clientSecret, authority);
  return new DefaultAzureCredential({
    ...authority,
    ...(o.tenantId === '' ? {} : { tenantId: o.tenantId }),
    ...(o.clientId === '' ? {} : { managedIdentityClientId: o.clientId }),
  });
}

/** `<resource-group>/<vm-name>`, validated in settings.ts. */
function locate(pool: PoolSpec): { group: string; vm: string } {
  const [group = '', vm = ''] = pool.target.split('/');
  return { group, vm };
}

function wrap(what: string, err: unknown): ProviderError {
  if (err instanceof ProviderError) return err;
  const e = err as { name?: string; statusCode?: number; code?: string; message?: string };
  if (e?.name === 'AbortError') {
    return new ProviderError('VM_OPERATION_ABORTED', `Azure ${what} abandoned`, `${what} abandoned`, { cause: err });
  }
  const detail = `${e?.code ?? e?.name ?? 'Error'}: ${e?.message ?? String(err)}`;
  const summary =
    typeof e?.statusCode === 'number'
      ? `Azure answered ${e.statusCode} to ${what}`
      : e?.name === 'CredentialUnavailableError' || e?.name === 'AuthenticationError'
        ? 'Azure sign-in failed'
        : `Azure ${what} failed`;
  return new ProviderError('VM_PROVIDER_FAILED', `Azure ${what} failed: ${detail}`, summary, { cause: err });
}

export function azureProvider(options: AzureProviderOptions): VmProvider {
  const client = new ComputeManagementClient(credentialFor(options), options.subscriptionId, {
    ...(options.resourceManagerUrl === '' ? {} : { endpoint: options.resourceManagerUrl }),
    retryOptions: {
      maxRetries: SDK_MAX_RETRIES,
      retryDelayInMs: options.retryDelayMs,
      maxRetryDelayInMs: options.retryDelayMs * 2 ** SDK_MAX_RETRIES,
    },
  });
  const vms = client.virtualMachines;
  return {
    kind: 'azure',
    status: async (pool, signal): Promise<VmPowerState> => {
      const { group, vm } = locate(pool);
      try {
        const view = await vms.instanceView(group, vm, signal ? { abortSignal: signal } : {});
        const code = view.statuses?.map((s) => s.code ?? '').find((c) => c.startsWith('PowerState/'));
        // No PowerState while Azure is still provisioning: a reading that changes nothing.
        if (code === undefined) return 'unknown';
        const power = powerFromWord(code.slice('PowerState/'.length));
        if (power === undefined) {
          throw new ProviderError(
            'VM_STATUS_UNRECOGNISED',
            `Azure reported ${code}`,
            'Azure reported an unknown power state',
          );
        }
        return power;
      } catch (err) {
        throw wrap('status', err);
      }
    },
    start: async (pool, signal) => {
      const { group, vm } = locate(pool);
      try {
        await vms.start(group, vm, { updateIntervalInMs: options.pollMs, abortSignal: signal });
      } catch (err) {
        throw wrap('start', err);
      }
    },
    deallocate: async (pool, signal) => {
      const { group, vm } = locate(pool);
      try {
        await vms.deallocate(group, vm, { updateIntervalInMs: options.pollMs, abortSignal: signal });
      } catch (err) {
        throw wrap('deallocate', err);
      }
    },
    close: async () => undefined,
  };
}
