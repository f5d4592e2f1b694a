/** Upload size arithmetic and the size error, shared by the HTTP route and the NATS intake. */
import { HubError, TIER_LIMITS, TIERS, type Tier } from '@perry-hub/contracts';

const MiB = 1024 * 1024;

/** Largest decoded tarball of any tier: the limit while the tier is not yet known. */
export const MAX_UPLOAD_BYTES = Math.max(...TIERS.map((t) => TIER_LIMITS[t].maxUploadBytes));

/** Length of the padded base64 text of `bytes` bytes. */
export function base64Length(bytes: number): number {
  return 4 * Math.ceil(bytes / 3);
}

export function tarballTooLarge(tier: Tier | undefined, maxBytes: number): HubError {
  return new HubError(
    'UPLOAD_TOO_LARGE',
    tier
      ? `Tarball too large: the ${tier} tier allows ${maxBytes / MiB} MiB`
      : `Tarball too large: at most ${maxBytes / MiB} MiB`,
  );
}
