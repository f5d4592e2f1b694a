/**
 * Overage billing: one meter event per pro publish above the monthly quota. The original built a
 * `curl` shell command from the customer id and token; this is a plain HTTPS request.
 */
import type { Logger } from '@perry-hub/runtime';

export interface PolarOptions {
  accessToken: string;
  meterId: string;
  apiUrl: string;
}

const TIMEOUT_MS = 10_000;

export async function reportOverage(options: PolarOptions, customerId: string, log: Logger): Promise<boolean> {
  if (!options.accessToken || !options.meterId) return false;
  try {
    const res = await fetch(`${options.apiUrl.replace(/\/+$/, '')}/v1/events`, {
      method: 'POST',
      headers: { authorization: `Bearer ${options.accessToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ customer_id: customerId, meter_id: options.meterId, value: 1 }),
      signal: AbortSignal.timeout(TIMEOUT_MS),
    });
    if (!res.ok) {
      log.warn({ status: res.status }, 'Polar refused an overage event');
      return false;
    }
    return true;
  } catch (err) {
    log.warn({ err: (err as Error).message }, 'reporting an overage publish to Polar failed');
    return false;
  }
}
