/**
 * Signing credentials arrive sealed (AES-256-GCM, libs/runtime sealed.ts) and are opened only to
 * write `job_assign`: the plaintext exists for the length of one JSON.stringify and its buffer is
 * zeroed afterwards. The job id is the sealing context, so credentials copied onto another job do
 * not open.
 */
import type { WireObject } from '@perry-hub/contracts';
import { openSealed, type SealKey } from '@perry-hub/runtime';

export type CredentialsOpener = (sealed: string | null, jobId: string) => WireObject;

/** `keys` are PERRY_HUB_CREDENTIALS_KEY's, parsed with the configuration (none: it is unset). */
export function credentialsOpener(keys: readonly SealKey[]): CredentialsOpener {
  return (sealed, jobId) => {
    if (sealed === null) return {};
    if (keys.length === 0) throw new Error('PERRY_HUB_CREDENTIALS_KEY is not configured');
    const plain = openSealed(keys, Buffer.from(sealed, 'base64'), jobId);
    try {
      const value: unknown = JSON.parse(plain.toString('utf8'));
      if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('not an object');
      return value as WireObject;
    } finally {
      plain.fill(0);
    }
  };
}
