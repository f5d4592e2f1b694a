/**
 * What each service does on the bus besides the topology entries it uses (topology.ts): the
 * endpoints of other services it calls and the core subjects it publishes and subscribes to.
 * Every service also serves its own `<p>.svc.<service>.*` endpoints (at least `health`).
 *
 * This is the source of each service's NATS permissions (permissions.ts): a subject a service
 * starts using without declaring it here is refused by the server, and the refusal is logged at
 * error (and fails the test suite, see libs/testkit).
 *
 * Subjects are named by the keys of `Subjects` (subjects.ts), with the argument a wildcard
 * stands for where the subject takes one: `jobEvents` is `<p>.jobs.*.events`.
 */
import type { EndpointSpec } from './rpc.js';
import type { ServiceName } from './services.js';
import type { Subjects } from './subjects.js';
import {
  accountCreateEndpoint,
  accountGetEndpoint,
  accountUpdateEndpoint,
  authorizeSubmissionEndpoint,
  licenseListEndpoint,
  registerLicenseEndpoint,
  releaseSubmissionEndpoint,
  verifyLicenseEndpoint,
} from './messages/license.js';
import { adminWorkersEndpoint, updatePerryEndpoint } from './messages/admin.js';
import {
  attemptArtifactsEndpoint,
  claimDownloadEndpoint,
  finishDownloadEndpoint,
  promoteEndpoint,
  registerArtifactEndpoint,
  renewDownloadsEndpoint,
} from './messages/artifacts.js';
import {
  authorizeTransferEndpoint,
  cancelJobEndpoint,
  jobStatusEndpoint,
  workerEventEndpoint,
  reclaimJobEndpoint,
} from './messages/dispatch.js';
import { queuePositionEndpoint } from './messages/jobs.js';
import { queueStatsEndpoint, workersSummaryEndpoint } from './messages/status.js';
import { queueSummaryEndpoint } from './messages/operate.js';
import { submitVerificationEndpoint } from './messages/verify.js';
import { vmStatusEndpoint } from './messages/vm.js';

/** A core subject (or subject pattern) on the bus, given the prefix's subjects. */
export type SubjectPattern = (s: Subjects) => string;

export interface ServiceBusNeeds {
  /** Endpoints of other services this one calls (request/reply). */
  readonly calls: readonly EndpointSpec[];
  /** Core subjects published to (including JetStream stream subjects written with `js.publish`). */
  readonly publishes: readonly SubjectPattern[];
  /** Core subjects subscribed to; a subscriber that answers requests relies on allow_responses. */
  readonly subscribes: readonly SubjectPattern[];
}

const SUBMIT_PATH_CALLS = [authorizeSubmissionEndpoint, releaseSubmissionEndpoint, queuePositionEndpoint];

export const BUS_NEEDS: Readonly<Record<ServiceName, ServiceBusNeeds>> = {
  ingest: {
    calls: [
      ...SUBMIT_PATH_CALLS,
      registerLicenseEndpoint,
      verifyLicenseEndpoint,
      accountGetEndpoint,
      accountCreateEndpoint,
      accountUpdateEndpoint,
      licenseListEndpoint,
      adminWorkersEndpoint,
      updatePerryEndpoint,
      authorizeTransferEndpoint,
      registerArtifactEndpoint,
      claimDownloadEndpoint,
      finishDownloadEndpoint,
      renewDownloadsEndpoint,
      queueStatsEndpoint,
      workersSummaryEndpoint,
      vmStatusEndpoint,
      cancelJobEndpoint,
      queueSummaryEndpoint,
    ],
    publishes: [(s) => s.intakeAll],
    // Answers the tool-facing subjects (submit, cancel, each tool's own API) in the `<p>.ingest`
    // queue group; hears the places of the jobs it queued.
    subscribes: [(s) => s.buildsSubmit, (s) => s.buildsCancel, (s) => s.toolAll, (s) => s.positionsAll],
  },
  license: {
    // Usage is counted from the EVENTS stream through its durable consumer: no core subjects.
    calls: [],
    publishes: [],
    subscribes: [],
  },
  scheduler: {
    calls: [submitVerificationEndpoint, promoteEndpoint, attemptArtifactsEndpoint],
    publishes: [
      (s) => s.queueDepth,
      (s) => s.vmPrewarm,
      (s) => s.jobEventsAll,
      (s) => s.jobDoneAll,
      (s) => s.jobCallbacksAll,
      (s) => s.positionsAll,
      // job_assign, cancel...: requests answered by the gateway holding the worker's socket.
      (s) => s.workerCommandAll,
    ],
    subscribes: [(s) => s.workers('lost'), (s) => s.workers('activity')],
  },
  'worker-gateway': {
    // A watcher's cancel frame is refused at the gateway (only the owner cancels, over HTTP or
    // NATS through ingest), so the gateway never calls the scheduler's cancel.
    calls: [jobStatusEndpoint, workerEventEndpoint, reclaimJobEndpoint],
    publishes: [
      (s) => s.workers('connected'),
      (s) => s.workers('lost'),
      (s) => s.workers('activity'),
      (s) => s.jobEventsAll,
      // Admin commands reach workers held by any gateway instance.
      (s) => s.workerCommandAll,
    ],
    subscribes: [(s) => s.workerCommandAll],
  },
  'vm-controller': {
    calls: [],
    publishes: [(s) => s.vmStateAll, (s) => s.metrics('vm'), (s) => s.metrics('vm-alert')],
    subscribes: [(s) => s.queueDepth, (s) => s.vmPrewarm, (s) => s.jobDoneAll],
  },
  'artifact-store': {
    calls: [],
    // artifact_ready events for CLI watchers.
    publishes: [(s) => s.jobEventsAll],
    // A job's outcome: its input tarball goes (one instance of the queue group takes each).
    subscribes: [(s) => s.jobDoneAll],
  },
};
