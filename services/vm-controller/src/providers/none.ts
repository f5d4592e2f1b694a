/**
 * Automatic VM start disabled: sign workers are expected to be connected by other means, and
 * waiting jobs are told so (see messages.ts). The controller never calls start or deallocate on
 * this provider; if it did, that would be a bug worth a loud error.
 */
import { ProviderError, type VmProvider } from './types.js';

export function noneProvider(): VmProvider {
  const disabled = async (): Promise<never> => {
    throw new ProviderError('VM_PROVIDER_FAILED', 'the none provider cannot start or stop VMs', 'disabled');
  };
  return {
    kind: 'none',
    status: async () => 'unknown',
    start: disabled,
    deallocate: disabled,
    close: async () => undefined,
  };
}
