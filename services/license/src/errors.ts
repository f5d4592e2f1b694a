/** The original hub's error messages, byte for byte (reference 1.2, 8.1). */
import { HubError, type Tier } from '@perry-hub/contracts';

export const LOGIN_URL = 'https://app.perryts.com/cli/authorize';

export const invalidApiToken = () => new HubError('AUTH_INVALID', 'Invalid API token');
export const invalidLicense = () => new HubError('LICENSE_INVALID', 'Invalid license key');
export const accountNotFound = () => new HubError('NOT_FOUND', 'Account not found');

export const accountRequired = () =>
  new HubError(
    'ACCOUNT_REQUIRED',
    "Free device licenses support one project. Run 'perry login' to create an account and publish multiple projects.",
    { details: { login_url: LOGIN_URL } },
  );

/** The original always says "free publishes", whatever the tier. */
export const publishLimitReached = (publishes: number, limit: number, period: string) =>
  new HubError(
    'PUBLISH_LIMIT_REACHED',
    `You've used ${publishes}/${limit} free publishes this month. Resets on the 1st. Run 'perry login' to upgrade to Pro ($19/mo, 50 publishes).`,
    { details: { usage: { publishes, limit, period } }, retry: 'retry-later' },
  );

export const rateLimited = (perHour: number) =>
  new HubError('RATE_LIMITED', `Hourly build limit reached (${perHour} per hour)`, { retry: 'retry-later' });

const MiB = 1024 * 1024;

export const uploadTooLarge = (tier: Tier, maxBytes: number) =>
  new HubError('UPLOAD_TOO_LARGE', `Tarball too large: the ${tier} tier allows ${maxBytes / MiB} MiB`);
