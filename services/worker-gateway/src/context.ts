/** What every session of one gateway instance shares: narrow, so sessions are easy to follow. */
import type { JetStreamClient } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/nats-core';
import type { Subjects, WireObject } from '@perry-hub/contracts';
import type { Logger } from 'pino';
import type { HubMetrics } from '@perry-hub/runtime';
import type { ActivityBatcher } from './activity.js';
import type { WorkerGatewayConfig } from './config.js';
import type { JobStatusLookup } from './job-status.js';
import type { Notices } from './notices.js';
import type { EventPublisher } from './publisher.js';
import type { UpdatePolicy } from './updates.js';

export interface WorkerSessionHandle {
  readonly workerId: string;
  readonly name: string;
  readonly activeJobs: number;
  /** The worker was given this job on this connection and has not sent its `complete` yet. */
  building(jobId: string): boolean;
  /** Rewrite the worker's presence entry (after a NATS reconnect: the server may have lost it). */
  writePresence(): Promise<void>;
  /** Since when its entry has been behind (a change not yet acknowledged); undefined: current. */
  readonly presenceBehindSince: number | undefined;
  /** Send `update_perry` unless the worker is busy; false when it was not sent. */
  requestUpdate(): Promise<boolean>;
}

export interface GatewayContext {
  readonly nc: NatsConnection;
  readonly metrics: HubMetrics;
  readonly js: JetStreamClient;
  /** Appends to job event logs (the hot path; see publisher.ts). */
  readonly events: EventPublisher;
  readonly presence: KV;
  /** A presence write was acknowledged at this revision of the bucket. */
  presenceWritten(revision: number): void;
  readonly subjects: Subjects;
  readonly log: Logger;
  readonly config: WorkerGatewayConfig;
  readonly gatewayId: string;
  /** How often an unchanged presence entry is rewritten anyway (a backstop; see WorkerSession.tick). */
  readonly presenceRefreshMs: number;
  readonly activity: ActivityBatcher;
  readonly updates: UpdatePolicy;
  /** Opens `credentialsSealed` of an assign command; null means no credentials (`{}`). */
  openCredentials(sealed: string | null, jobId: string): WireObject;
  /** Bounded log lines about refused connections, bad frames and dropped messages. */
  readonly notices: Notices;
  /** The scheduler's job-status, asked once per job for all its concurrent subscribers. */
  readonly jobStatus: JobStatusLookup;
  /** Open watcher sockets per job id on this instance (PERRY_HUB_WS_MAX_WATCHERS_PER_JOB). */
  readonly watchers: Map<string, number>;
  /** Workers connected to this instance, by worker id. */
  readonly workers: Map<string, WorkerSessionHandle>;
  /** Default names for workers that send none: `worker-<n>`, as the original counted. */
  nextWorkerNumber(): number;
  /** True once stop() began: retries give up, nothing new starts. */
  stopping(): boolean;
}
