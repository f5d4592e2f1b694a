/**
 * Every NATS subject of Perry Hub comes from this file.
 *
 * Grammar (all tokens lower-case; `<p>` is the configurable prefix, default `perry`):
 *
 *   <p>.svc.<service>.<endpoint>     request/reply endpoint of a service; served with the service
 *                                    name as queue group, so any number of instances share the load
 *   <p>.builds.submit                NATS-native build submission (same intake logic as HTTP);
 *                                    tool-facing, like every subject in TOOL_SUBJECTS
 *   <p>.builds.cancel                NATS-native cancel of a job by the credential that submitted it
 *   <p>.tools.<tool>.<op>            a tool identity's own API (upload, submit, status, list, cancel,
 *                                    events, artifact); the NATS user `tool-<tool>` may publish only
 *                                    under its own name, so the subject says who is asking
 *   <p>.intake.<jobId>               JetStream INTAKE stream: one message per accepted job,
 *                                    Nats-Msg-Id = jobId, consumed by the scheduler
 *   <p>.jobs.<jobId>.events          JetStream EVENTS stream: the per-job event log that CLIs replay
 *   <p>.jobs.<jobId>.done            terminal outcome of a job (counted by the license service)
 *   <p>.callbacks.<jobId>            the same outcome again, of a job with a callback URL only: its
 *                                    callbacks are queued from it (the ingest), so no other job's
 *                                    outcome reaches the ingest
 *   <p>.queue.depth                  queue depth per capability, on every change and periodically
 *   <p>.positions.<instance>         a just-queued job's place, from the scheduler's leader to the
 *                                    ingest instance named in its intake message (so it need not ask)
 *   <p>.workers.<event>              worker lifecycle (connected, lost) and job activity batches
 *   <p>.workers.<workerId>.cmd       commands for one connected worker (job_assign, cancel, ...)
 *   <p>.vm.<pool>.state              sign VM state changes
 *   <p>.vm.prewarm                   a hint that a capability's VM will soon be needed
 *   <p>.metrics.<name>               measurements (e.g. vm: demand-to-start and boot times)
 *
 * The prefix isolates hubs (and tests) sharing one nats-server; stream, bucket and consumer
 * names are derived from it in topology.ts because they cannot contain dots.
 */
import type { ServiceName } from './services.js';

export const DEFAULT_SUBJECT_PREFIX = 'perry';

/** Prefixes are used inside subjects and in stream/bucket names, so their alphabet is narrow. */
export const SUBJECT_PREFIX_PATTERN = '^[a-z][a-z0-9_-]{0,31}$';

const TOKEN = /^[A-Za-z0-9_-]+$/;

/** A subject token built from outside input (a job id, a worker id) must never add levels. */
export function token(value: string): string {
  if (!TOKEN.test(value)) {
    throw new TypeError(`not a valid subject token: ${JSON.stringify(value)}`);
  }
  return value;
}

export interface Subjects {
  readonly prefix: string;
  endpoint(service: ServiceName, endpoint: string): string;
  serviceGroup(service: ServiceName): string;
  readonly buildsSubmit: string;
  readonly buildsCancel: string;
  /** A tool's own request subject for `op` (TOOL_OPS). */
  tool(tool: string, op: string): string;
  /** Every operation of one tool: what its NATS user may publish. */
  toolOps(tool: string): string;
  /** Every tool's requests: what the ingest serves. */
  readonly toolAll: string;
  intake(jobId: string): string;
  readonly intakeAll: string;
  jobEvents(jobId: string): string;
  readonly jobEventsAll: string;
  jobDone(jobId: string): string;
  readonly jobDoneAll: string;
  jobCallbacks(jobId: string): string;
  readonly jobCallbacksAll: string;
  /**
   * A subject of the events stream nothing is stored on (no job has this id): purged as a
   * barrier before looking for an append whose answer was lost (runtime `findAppend`).
   */
  readonly eventsBarrier: string;
  readonly queueDepth: string;
  positions(instance: string): string;
  readonly positionsAll: string;
  workers(event: string): string;
  workerCommand(workerId: string): string;
  readonly workerCommandAll: string;
  vmState(pool: string): string;
  readonly vmStateAll: string;
  readonly vmPrewarm: string;
  metrics(name: string): string;
}

export function subjects(prefix: string = DEFAULT_SUBJECT_PREFIX): Subjects {
  if (!new RegExp(SUBJECT_PREFIX_PATTERN).test(prefix)) {
    throw new TypeError(`subject prefix must match ${SUBJECT_PREFIX_PATTERN}: ${JSON.stringify(prefix)}`);
  }
  const p = prefix;
  return {
    prefix: p,
    endpoint: (service, endpoint) => `${p}.svc.${service}.${token(endpoint)}`,
    serviceGroup: (service) => `${p}.svc.${service}`,
    buildsSubmit: `${p}.builds.submit`,
    buildsCancel: `${p}.builds.cancel`,
    tool: (tool, op) => `${p}.tools.${token(tool)}.${token(op)}`,
    toolOps: (tool) => `${p}.tools.${token(tool)}.*`,
    toolAll: `${p}.tools.*.*`,
    intake: (jobId) => `${p}.intake.${token(jobId)}`,
    intakeAll: `${p}.intake.*`,
    jobEvents: (jobId) => `${p}.jobs.${token(jobId)}.events`,
    jobEventsAll: `${p}.jobs.*.events`,
    jobDone: (jobId) => `${p}.jobs.${token(jobId)}.done`,
    jobDoneAll: `${p}.jobs.*.done`,
    jobCallbacks: (jobId) => `${p}.callbacks.${token(jobId)}`,
    jobCallbacksAll: `${p}.callbacks.*`,
    eventsBarrier: `${p}.callbacks.barrier`,
    queueDepth: `${p}.queue.depth`,
    positions: (instance) => `${p}.positions.${token(instance)}`,
    positionsAll: `${p}.positions.*`,
    workers: (event) => `${p}.workers.${token(event)}`,
    workerCommand: (workerId) => `${p}.workers.${token(workerId)}.cmd`,
    workerCommandAll: `${p}.workers.*.cmd`,
    vmState: (pool) => `${p}.vm.${token(pool)}.state`,
    vmStateAll: `${p}.vm.*.state`,
    vmPrewarm: `${p}.vm.prewarm`,
    metrics: (name) => `${p}.metrics.${token(name)}`,
  };
}

/**
 * The only subjects external tools may publish to (see permissions.ts): everything else on the
 * bus is internal. Both are request/reply; the reply goes to the tool's own inbox.
 */
export const TOOL_SUBJECTS = ['buildsSubmit', 'buildsCancel'] as const satisfies readonly (keyof Subjects)[];
