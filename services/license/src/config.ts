import Type, { type Static } from 'typebox';
import { configSchema, dbFields, fromEnv, natsFields, processFields, storageFields } from '@perry-hub/runtime';

export const LicenseConfig = configSchema({
  ...natsFields,
  ...dbFields,
  ...processFields,
  ...storageFields,
  selfHosted: fromEnv('PERRY_HUB_SELF_HOSTED', Type.Boolean({ default: false }), {
    description:
      'Self-hosted hub: no monthly publish quota, no hourly limit and no device-to-project binding (licenses are still required)',
  }),
  polarAccessToken: fromEnv('POLAR_ACCESS_TOKEN', Type.String({ default: '' }), {
    description: 'Polar API token; with POLAR_METER_PUBLISH, pro publishes above the monthly quota are reported',
    secret: true,
  }),
  polarMeterPublish: fromEnv('POLAR_METER_PUBLISH', Type.String({ default: '' }), {
    description: 'Polar meter id that overage publishes are reported to',
  }),
  polarApiUrl: fromEnv(
    'POLAR_API_URL',
    Type.String({ pattern: '^https?://[^\\s/]+(/[^\\s]*)?$', default: 'https://api.polar.sh' }),
    { description: 'Polar API base URL (events are POSTed to <url>/v1/events)' },
  ),
  inFlightGraceMs: fromEnv('PERRY_HUB_SUBMISSION_GRACE_MS', Type.Integer({ minimum: 1000, default: 15 * 60_000 }), {
    description:
      'How long an accepted submission without a build record (its intake died) still counts as in flight against the quota',
  }),
  reservationSweepSecs: fromEnv('PERRY_HUB_RESERVATION_SWEEP_SECS', Type.Integer({ minimum: 1, default: 60 }), {
    description:
      'How often reservations of submissions that died before recording their job are released when past their request deadline (those of an ingest instance known dead go at once: at start, and when its liveness record is deleted or seen expired)',
  }),
});
export type LicenseConfig = Static<typeof LicenseConfig>;
