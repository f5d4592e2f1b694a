import type { VmControllerConfig } from '../config.js';
import type { Settings } from '../settings.js';
import { azureProvider } from './azure.js';
import { commandProvider } from './command.js';
import { noneProvider } from './none.js';
import type { VmProvider } from './types.js';

export * from './types.js';

export function createProvider(settings: Settings, config: VmControllerConfig): VmProvider {
  switch (settings.provider) {
    case 'azure':
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
