/**
 * Configuration of the HTTP abuse limits. Counts of 0 turn a limit off. Counters are shared by
 * every ingest instance (NATS KV `<p>-limits`); byte budgets are per instance (they count bytes
 * this process is holding).
 */
import Type from 'typebox';
import { addressListFromEnv, fromEnv } from '@perry-hub/runtime';

const MiB = 1024 * 1024;
const count = (env: string, fallback: number, description: string) =>
  fromEnv(env, Type.Integer({ minimum: 0, default: fallback }), { description: `${description} (0: off)` });

export const abuseFields = {
  selfHosted: fromEnv('PERRY_HUB_SELF_HOSTED', Type.Boolean({ default: false }), {
    description:
      'Self-hosted hub: no monthly publish quota, no hourly limit and no device-to-project binding (licenses are still required)',
  }),
  trustProxy: addressListFromEnv(
    'PERRY_HUB_TRUST_PROXY',
    'Reverse proxies whose X-Forwarded-For names the client (comma-separated addresses or CIDR ranges, e.g. 127.0.0.1,10.0.0.0/8); empty: the connecting address is the client',
  ),
  authFailuresMax: count(
    'PERRY_HUB_AUTH_FAILURES_MAX',
    20,
    'Failed authentications (license key, API token, admin secret, worker job token) an address may make per window; then every authenticated route answers 429 to it until the window ends',
  ),
  authFailuresWindowMs: fromEnv(
    'PERRY_HUB_AUTH_FAILURES_WINDOW_MS',
    Type.Integer({ minimum: 1000, maximum: 86_400_000, default: 600_000 }),
    { description: 'Window of PERRY_HUB_AUTH_FAILURES_MAX' },
  ),
  registerMaxPerHour: count(
    'PERRY_HUB_REGISTER_MAX_PER_HOUR',
    10,
    'Free licenses one address may register per hour (POST /api/v1/license/register); off when self-hosted',
  ),
  submissionsPerAddressMaxPerHour: count(
    'PERRY_HUB_SUBMISSIONS_PER_ADDRESS_MAX_PER_HOUR',
    120,
    'Build submissions (accepted or not) one address may make per hour; off when self-hosted',
  ),
  submissionsPerLicenseMaxPerHour: count(
    'PERRY_HUB_SUBMISSIONS_PER_LICENSE_MAX_PER_HOUR',
    60,
    'Build submissions (accepted or not) per license key or API token per hour, HTTP and NATS; off when self-hosted',
  ),
  preauthBytesPerAddress: fromEnv(
    'PERRY_HUB_PREAUTH_BYTES_PER_ADDRESS',
    Type.Integer({ minimum: 1024 * 1024, default: 512 * MiB }),
    {
      description:
        'Request bytes one address may have in flight before its license is known (the CLI sends license_key after the tarball); past it, 429 at once',
    },
  ),
  preauthBytesTotal: fromEnv(
    'PERRY_HUB_PREAUTH_BYTES_TOTAL',
    Type.Integer({ minimum: 1024 * 1024, default: 2048 * MiB }),
    {
      description: 'The same budget for all addresses together, per ingest instance',
    },
  ),
  minBodyBytesPerSec: count(
    'PERRY_HUB_MIN_BODY_BYTES_PER_SEC',
    1024,
    'A request body arriving slower than this, averaged over PERRY_HUB_MIN_BODY_WINDOW_MS while the hub is waiting for it, is cut with 408',
  ),
  minBodyWindowMs: fromEnv('PERRY_HUB_MIN_BODY_WINDOW_MS', Type.Integer({ minimum: 500, default: 20_000 }), {
    description: 'Window of PERRY_HUB_MIN_BODY_BYTES_PER_SEC',
  }),
};
