/**
 * The service kit: what every service's composition root does, in one place. A service is a
 * definition (name, config schema, `start`); `launchService` validates nothing itself (config
 * arrives parsed), opens NATS (and MySQL when asked), ensures the service's topology, serves its
 * health endpoint, calls `start(deps, config)` and wires the ordered shutdown.
 */
import type { Static, TObject } from 'typebox';
import type { NatsConnection } from '@nats-io/nats-core';
import { Kvm } from '@nats-io/kv';
import {
  HUB_VERSION,
  healthEndpoint,
  natsInboxPrefix,
  subjects as makeSubjects,
  topologyFor,
  DEFAULT_TOPOLOGY_LIMITS,
  topologyNames,
  LIVENESS_WATCHED,
  UNWATCHED_LIVENESS_TTL_MS,
  type Health,
  type ServiceName,
  type Subjects,
  type TopologyLimits,
} from '@perry-hub/contracts';
import { ensureDatabase, failingFast, migrate, openPool, type DbOptions, type Pool } from '@perry-hub/db';
import type { Logger } from 'pino';
import { connectNats, type NatsOptions } from './nats.js';
import { ensureTopology } from './topology.js';
import { handle, serveEndpoints, type BoundEndpoint } from './rpc.js';
import { Lifecycle, type StopOutcome } from './lifecycle.js';
import { LivenessWriter, forgetInstances, newInstanceId, type LivenessStamp } from './liveness.js';
import { ProcessOps, type Check } from './ops.js';
import type { HubMetrics } from './metrics.js';
import { instrumentPool, watchNatsStatus } from './probes.js';

const DEFAULT_INSTANCE_TTL_MS = 5_000;

/** Short where somebody judges the instance by its record, long (few refreshes) elsewhere. */
export function livenessTtlMs(service: ServiceName, configuredMs: number): number {
  return LIVENESS_WATCHED.includes(service) ? configuredMs : Math.max(configuredMs, UNWATCHED_LIVENESS_TTL_MS);
}

export interface BaseConfig extends NatsOptions {
  subjectPrefix: string;
  shutdownGraceMs: number;
  shutdownForceMs: number;
  /** PERRY_HUB_EVENT_LOOP_SAMPLE_MS, for the metrics of a service launched without shared ops. */
  eventLoopSampleMs?: number;
  /** Replicas of every stream and bucket (`PERRY_HUB_JS_REPLICAS`); 1 when absent. */
  jsReplicas?: number;
  /** Liveness record TTL (`PERRY_HUB_INSTANCE_TTL_MS`); 5 s when absent. */
  instanceTtlMs?: number;
}

export interface LaunchOptions {
  /** Chosen by a launcher that records its instances (the all-in-one); random otherwise. */
  readonly instanceId?: string;
  /** Instances known to be dead (the launcher's previous run): their records go at once. */
  readonly predecessors?: readonly string[];
  /** The process's metrics and readiness checks, shared by its services; a new one when absent. */
  readonly ops?: ProcessOps;
  /** A stop asked for while launching: the launch gives up instead of waiting for the cluster. */
  readonly signal?: AbortSignal;
}

export interface ServiceDeps {
  readonly nc: NatsConnection;
  readonly log: Logger;
  readonly subjects: Subjects;
  readonly instanceId: string;
  /** Instances that died with the previous run of this launcher: leases they hold are free. */
  readonly predecessors: readonly string[];
  /** Present when the definition says `needsDb`; migrations have run. */
  readonly db: Pool | undefined;
  /** Add request/reply endpoints to this service (call during start). */
  serve(endpoints: readonly BoundEndpoint[]): void;
  /** The process's metrics (one registry per process). */
  readonly metrics: HubMetrics;
  /** The process's health and readiness (the ingest serves them over HTTP). */
  readonly ops: ProcessOps;
  /** Add a readiness check of this service's own loops, shown as `<service>.<name>` in /readyz. */
  ready(name: string, check: Check): void;
  /** What this instance's liveness record carries from now on (a gateway: its presence revision). */
  stampLiveness(stamp: LivenessStamp): void;
}

export interface RunningService {
  /** Stop taking new work and finish or hand back what is in flight. Idempotent. */
  stop(): Promise<void>;
  /** What the service wants its launcher to know (e.g. the port it bound). */
  readonly info?: Readonly<Record<string, unknown>>;
}

export interface ServiceDefinition<C extends TObject = TObject> {
  readonly name: ServiceName;
  readonly config: C;
  readonly needsDb: boolean;
  start(deps: ServiceDeps, config: Static<C>): Promise<RunningService>;
}

export function defineService<C extends TObject>(definition: ServiceDefinition<C>): ServiceDefinition<C> {
  return definition;
}

export interface LaunchedService {
  readonly name: ServiceName;
  readonly instanceId: string;
  readonly stopped: Promise<StopOutcome>;
  stop(): Promise<StopOutcome>;
  /** Shutdown stages in the order they completed. */
  readonly history: readonly string[];
  readonly info: Readonly<Record<string, unknown>>;
  readonly ops: ProcessOps;
}

/** The storage sizes a service's config carries (storageFields), else the defaults. */
function topologyLimits(config: object): TopologyLimits {
  const c = config as Partial<TopologyLimits>;
  return {
    blobsMaxBytes: c.blobsMaxBytes ?? DEFAULT_TOPOLOGY_LIMITS.blobsMaxBytes,
    eventsMaxBytes: c.eventsMaxBytes ?? DEFAULT_TOPOLOGY_LIMITS.eventsMaxBytes,
  };
}

export async function launchService<C extends TObject>(
  definition: ServiceDefinition<C>,
  config: Static<C> & BaseConfig,
  parentLog: Logger,
  options: LaunchOptions = {},
): Promise<LaunchedService> {
  const instanceId = options.instanceId ?? newInstanceId(definition.name);
  const log = parentLog.child({ service: definition.name });
  const lifecycle = new Lifecycle({ graceMs: config.shutdownGraceMs, forceMs: config.shutdownForceMs, log });
  const subjects = makeSubjects(config.subjectPrefix);
  const startedAt = Date.now();
  const ops =
    options.ops ??
    new ProcessOps(config.eventLoopSampleMs === undefined ? {} : { eventLoopSampleMs: config.eventLoopSampleMs });
  const name = definition.name;
  const removeChecks: (() => void)[] = [];
  const ready = (what: string, check: Check) => removeChecks.push(ops.check(`${name}.${what}`, check));

  // Each service is its own NATS user, with the permissions derived from the bus declaration.
  const nc = await connectNats(config, `perry-hub ${instanceId}`, log, {
    identity: definition.name,
    inboxPrefix: natsInboxPrefix(config.subjectPrefix, definition.name),
  });
  const nats = watchNatsStatus(nc, () => ops.metrics.natsReconnects.inc({ service: name }));
  ready('nats', () => nats.state());
  let topologyEnsured = false;
  ready('topology', () => (topologyEnsured ? 'ok' : 'not ensured yet'));
  let db: Pool | undefined;
  let liveness: LivenessWriter | undefined;
  try {
    await ensureTopology(nc, topologyFor(config.subjectPrefix, definition.name, topologyLimits(config)), {
      replicas: config.jsReplicas ?? 1,
      log,
      ...(options.signal ? { signal: options.signal } : {}),
    });
    topologyEnsured = true;
    const instances = await new Kvm(nc).open(topologyNames(config.subjectPrefix).instancesBucket);
    await forgetInstances(instances, options.predecessors ?? []);
    liveness = new LivenessWriter({
      kv: instances,
      instanceId,
      service: definition.name,
      ttlMs: livenessTtlMs(definition.name, config.instanceTtlMs ?? DEFAULT_INSTANCE_TTL_MS),
      log,
      nc,
    });
    await liveness.start();
    if (definition.needsDb) {
      const dbOptions = config as unknown as DbOptions;
      await ensureDatabase(dbOptions);
      db = openPool(dbOptions);
      instrumentPool(db, ops.metrics, name);
      await migrate(db);
    }
  } catch (err) {
    for (const remove of removeChecks) remove();
    await liveness?.stop();
    await nc.close().catch(() => undefined);
    await db?.end().catch(() => undefined);
    throw err;
  }

  const checkDb = async (): Promise<string> => {
    if (!db) return 'ok';
    try {
      await failingFast(db).query('SELECT 1');
      return 'ok';
    } catch (err) {
      return (err as Error).message;
    }
  };
  const health = handle(healthEndpoint(definition.name), async (): Promise<Health> => {
    const checks: Record<string, string> = { nats: 'ok' };
    if (db) checks['mysql'] = await checkDb();
    return {
      service: definition.name,
      instanceId,
      status: Object.values(checks).every((c) => c === 'ok') ? 'ok' : 'degraded',
      uptimeMs: Date.now() - startedAt,
      version: HUB_VERSION,
      checks,
    };
  });
  if (db) ready('mysql', checkDb);
  const endpoints: BoundEndpoint[] = [health];
  const deps: ServiceDeps = {
    nc,
    log,
    subjects,
    instanceId,
    predecessors: options.predecessors ?? [],
    db,
    serve: (more) => endpoints.push(...more),
    metrics: ops.metrics,
    ops,
    ready,
    stampLiveness: (stamp) => liveness.stampWith(stamp),
  };

  let running: RunningService;
  try {
    running = await definition.start(deps, config);
  } catch (err) {
    for (const remove of removeChecks) remove();
    await liveness.stop();
    await nc.close().catch(() => undefined);
    await db?.end().catch(() => undefined);
    throw err;
  }
  const micro = await serveEndpoints({ nc, subjects, service: definition.name, version: HUB_VERSION, log }, endpoints);

  // A stopping service is no longer ready (a load balancer takes it out first).
  let stopping = false;
  ready('running', () => (stopping ? 'stopping' : 'ok'));
  lifecycle.add({
    name: 'intake',
    close: () => {
      stopping = true;
      return running.stop();
    },
  });
  lifecycle.add({ name: 'endpoints', close: () => micro.stop() });
  const writer = liveness;
  lifecycle.add({ name: 'liveness', close: () => writer.stop() });
  lifecycle.add({ name: 'nats', close: () => nc.drain(), force: () => nc.close() });

  if (db) {
    const pool = db;
    lifecycle.add({
      name: 'mysql',
      close: () => pool.end(),
      force: () => (pool as unknown as { pool?: { end?: () => void } }).pool?.end?.(),
    });
  }
  log.info({ instanceId, prefix: config.subjectPrefix }, 'service started');
  void lifecycle.stopped.then((outcome) => {
    for (const remove of removeChecks) remove();
    log.info({ outcome, stages: lifecycle.history }, 'service stopped');
  });

  return {
    name: definition.name,
    instanceId,
    stopped: lifecycle.stopped,
    stop: () => lifecycle.stop(),
    history: lifecycle.history,
    info: running.info ?? {},
    ops,
  };
}
