/** A 429 of the hub's own limits, carrying when to come back for the `Retry-After` header. */
import { HubError } from '@perry-hub/contracts';

const RETRY_AFTER = Symbol('retryAfterSecs');

export function rateLimited(message: string, retryAfterSecs: number): HubError {
  const err = new HubError('RATE_LIMITED', message, { retry: 'retry-later' });
  Object.defineProperty(err, RETRY_AFTER, { value: Math.max(1, Math.ceil(retryAfterSecs)) });
  return err;
}

export function retryAfterSecs(err: unknown): number | undefined {
  return typeof err === 'object' && err !== null
    ? ((err as Record<symbol, number | undefined>)[RETRY_AFTER] ?? undefined)
    : undefined;
}
