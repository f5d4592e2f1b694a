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
  topologyNames,
  registerLicenseEndpoint,
  releaseSubmissionEndpoint,
  verifyLicenseEndpoint,
} from '@perry-hub/contracts';
import type { Pool } from '@perry-hub/db';
import { LivenessView, defineService, handle } from '@perry-hub/runtime';
import { createAccount, getAccount, registerLicense, updateAccount, verifyLicense } from './accounts.js';
import { listLicenses } from './list.js';
import { authorizeSubmission, releaseSubmission } from './authorize.js';
import { LicenseConfig } from './config.js';
import { startUsageConsumer } from './usage.js';
import { startReservationSweeper } from './reservations.js';
import type { Procedures } from './procedures.js';

export { LicenseConfig } from './config.js';
export { recordCompletion } from './usage.js';

export const license = defineService({
  name: 'license',
  config: LicenseConfig,
  needsDb: true,
  start: async (deps, config) => {
    const db = deps.db as Pool;
    // One per instance: a database that cannot run the procedures is found out once.
    const procedures: Procedures = { usable: true, log: deps.log };
    const options = { selfHosted: config.selfHosted, inFlightGraceMs: config.inFlightGraceMs, procedures };
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
      { nc: deps.nc, db, log: deps.log, prefix: config.subjectPrefix, procedures },
      { accessToken: config.polarAccessToken, meterId: config.polarMeterPublish, apiUrl: config.polarApiUrl },
    );
    // A reservation whose ingest instance died goes at once: the all-in-one names its previous
    // run's instances, and the others' liveness records tell.
    const predecessors = new Set(deps.predecessors);
    let kick: () => void = () => undefined;
    const instances = new LivenessView({
      bucket: topologyNames(config.subjectPrefix).instancesBucket,
      services: ['ingest'],
      ttlMs: config.instanceTtlMs,
      onGone: () => kick(),
    });
    await instances.start(deps.log, deps.nc);
    const sweeper = startReservationSweeper(
      { db, log: deps.log },
      {
        intervalMs: config.reservationSweepSecs * 1000,
        graceMs: config.inFlightGraceMs,
        instanceDead: (id) => predecessors.has(id) || instances.state(id) === 'dead',
      },
    );
    kick = () => sweeper.kick();
    // Records that expired before this instance watched are believed dead one TTL after it began.
    const firstExpiry = setTimeout(kick, config.instanceTtlMs + 100);
    firstExpiry.unref();
    if (config.selfHosted) deps.log.info('self-hosted: no publish quota, hourly limit or device binding');
    return {
      stop: async () => {
        clearTimeout(firstExpiry);
        instances.stop();
        await sweeper.stop();
        await usage.stop();
      },
    };
  },
});
