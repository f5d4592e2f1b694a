import type { VmControllerConfig } from '../config.js';
import type { Settings } from '../settings.js';
import { commandProvider } from './command.js';
import { noneProvider } from './none.js';
import type { VmProvider } from './types.js';

export * from './types.js';

/**
 * The provider the settings name. The Azure SDK is loaded only for the azure provider: it is a
 * third of a hub's heap after start and a third of a second of its start-up, which a hub without
 * Azure settings (the default) would otherwise pay, and its garbage collector with it.
 */
export async function createProvider(settings: Settings, config: VmControllerConfig): Promise<VmProvider> {
  switch (settings.provider) {
    case 'azure': {
      const { azureProvider } = await import('./azure.js');
      return azureProvider({
        tenantId: config.azureTenantId,
        clientId: config.azureClientId,
        clientSecret: config.azureClientSecret,
        subscriptionId: config.azureSubscriptionId,
        authorityHost: config.azureAuthorityHost,
        resourceManagerUrl: config.azureResourceManagerUrl,
        pollMs: config.azurePollMs,
        retryDelayMs: config.azureRetryDelayMs,
      });
    }
    case 'command':
      return commandProvider({
        startCommand: config.startCommand,
        stopCommand: config.stopCommand,
        statusCommand: config.statusCommand,
        timeoutMs: config.commandTimeoutMs,
      });
    case 'none':
      return noneProvider();
  }
}
