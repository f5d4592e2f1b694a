/**
 * The license service owns licenses, accounts, usage counters, quotas and rate limits (MySQL),
 * and answers over request/reply; it counts publishes from the job outcomes on the bus.
 */
import {
  accountCreateEndpoint,
  accountGetEndpoint,
  accountUpdateEndpoint,
  authorizeSubmissionEndpoint,
  licenseListEndpoint,
  registerLicenseEndpoint,
  releaseSubmissionEndpoint,
  verifyLicenseEndpoint,
} from '@perry-hub/contracts';
import type { Pool } from '@perry-hub/db';
import { defineService, handle } from '@perry-hub/runtime';
import { createAccount, getAccount, registerLicense, updateAccount, verifyLicense } from './accounts.js';
import { listLicenses } from './list.js';
import { authorizeSubmission, releaseSubmission } from './authorize.js';
import { LicenseConfig } from './config.js';
import { startUsageConsumer } from './usage.js';
import { startReservationSweeper } from './reservations.js';

export { LicenseConfig } from './config.js';
export { recordCompletion } from './usage.js';

export const license = defineService({
  name: 'license',
  config: LicenseConfig,
  needsDb: true,
  start: async (deps, config) => {
    const db = deps.db as Pool;
    const options = { selfHosted: config.selfHosted, inFlightGraceMs: config.inFlightGraceMs };
    deps.serve([
      handle(registerLicenseEndpoint, ({ githubUsername }) => registerLicense(db, githubUsername)),
      handle(verifyLicenseEndpoint, ({ licenseKey }) => verifyLicense(db, licenseKey)),
      handle(authorizeSubmissionEndpoint, (request) => authorizeSubmission(db, request, options)),
      handle(releaseSubmissionEndpoint, async ({ jobId }) => ({ released: await releaseSubmission(db, jobId) })),
      handle(accountGetEndpoint, ({ apiToken }) => getAccount(db, apiToken)),
      handle(accountCreateEndpoint, (request) => createAccount(db, request)),
      handle(licenseListEndpoint, (request) => listLicenses(db, request)),
      handle(accountUpdateEndpoint, async (request) => {
        await updateAccount(db, request);
        return { ok: true as const };
      }),
    ]);
    const usage = await startUsageConsumer(
      { nc: deps.nc, db, log: deps.log, prefix: config.subjectPrefix },
      { accessToken: config.polarAccessToken, meterId: config.polarMeterPublish, apiUrl: config.polarApiUrl },
    );
    const sweeper = startReservationSweeper(
      { db, log: deps.log },
      { intervalMs: config.reservationSweepSecs * 1000, graceMs: config.inFlightGraceMs },
    );
    if (config.selfHosted) deps.log.info('self-hosted: no publish quota, hourly limit or device binding');
    return {
      stop: async () => {
        await sweeper.stop();
        await usage.stop();
      },
    };
  },
});
