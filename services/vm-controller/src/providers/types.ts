/**
 * One interface in front of every way of starting and stopping a sign VM. The controller never
 * knows which provider it talks to; it only needs a power reading, a start and a deallocation,
 * each of which may fail with a ProviderError.
 */
import type { VmPowerState, VmProviderKind } from '@perry-hub/contracts';
import type { PoolSpec } from '../settings.js';

export interface VmProvider {
  readonly kind: VmProviderKind;
  /** The VM's power state as the provider reports it now. */
  status(pool: PoolSpec, signal?: AbortSignal): Promise<VmPowerState>;
  /** Start the VM; resolves when the provider reports the start operation finished. */
  start(pool: PoolSpec, signal: AbortSignal): Promise<void>;
  /** Stop the VM so that it is no longer billed; resolves when the operation finished. */
  deallocate(pool: PoolSpec, signal: AbortSignal): Promise<void>;
  /** Release what the provider holds (clients, timers). */
  close(): Promise<void>;
}

export const PROVIDER_ERROR_CODES = {
  /** The cloud (or command) refused or failed the call; retried with backoff. */
  VM_PROVIDER_FAILED: 'VM_PROVIDER_FAILED',
  /** The call took longer than allowed; retried with backoff. */
  VM_PROVIDER_TIMEOUT: 'VM_PROVIDER_TIMEOUT',
  /** The provider answered something we cannot read as a power state. */
  VM_STATUS_UNRECOGNISED: 'VM_STATUS_UNRECOGNISED',
  /** The operation was abandoned by the controller (e.g. a stuck start replaced). */
  VM_OPERATION_ABORTED: 'VM_OPERATION_ABORTED',
} as const;
export type ProviderErrorCode = keyof typeof PROVIDER_ERROR_CODES;

export class ProviderError extends Error {
  override readonly name = 'ProviderError';
  /**
   * @param summary short, safe to show to users in the pool's message (no ids or raw cloud text);
   *   the full story is in `message` and `cause`, which only go to the log.
   */
  constructor(
    readonly code: ProviderErrorCode,
    message: string,
    readonly summary: string,
    options: { cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
  }
}

export function summaryOf(err: unknown): string {
  return err instanceof ProviderError ? err.summary : 'unexpected error';
}

/** Power words a provider may report, in the forms Azure and shell scripts use. */
const POWER_WORDS: Readonly<Record<string, VmPowerState>> = {
  running: 'running',
  starting: 'starting',
  stopping: 'stopping',
  deallocating: 'stopping',
  deallocated: 'deallocated',
  // Stopped but allocated: still billed, but a start brings it back like a deallocated one.
  stopped: 'deallocated',
  unknown: 'unknown',
};

export function powerFromWord(word: string): VmPowerState | undefined {
  return POWER_WORDS[word.trim().toLowerCase()];
}
