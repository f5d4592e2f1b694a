/**
 * The worker-gateway holds the WebSocket connections of workers and CLI watchers and bridges
 * them to the bus: worker progress into each job's event log, outcomes to the scheduler,
 * assignments from the scheduler onto sockets, and presence into the KV bucket every gateway
 * instance, the scheduler and the vm-controller read.
 */
import type { Server } from 'node:http';
import { jetstream } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { jobStatusEndpoint, topologyNames, workersSummaryEndpoint } from '@perry-hub/contracts';
import { LivenessView, call, defineService, handle, type HubMetrics } from '@perry-hub/runtime';
import { CliSession } from './cli-session.js';
import type { Connection } from './connection.js';
import { ActivityBatcher } from './activity.js';
import { WorkerGatewayConfig } from './config.js';
import type { GatewayContext, WorkerSessionHandle } from './context.js';
import { credentialsOpener } from './credentials.js';
import { startHeartbeat } from './heartbeat.js';
import { JobStatusLookup } from './job-status.js';
import { Notices } from './notices.js';
import { PresenceView, supportedTargets } from './presence.js';
import { EventPublisher } from './publisher.js';
import { WsFrontDoor } from './server.js';
import { ExpectedVersion } from './settings.js';
import { UpdatePolicy } from './updates.js';
import { WorkerSession } from './worker-session.js';
import { adminEndpoints } from './admin.js';

export { WorkerGatewayConfig } from './config.js';

/** How long stop() waits for workers' last words to reach the bus before giving up on them. */
const DRAIN_MS = 5_000;

export const workerGateway = defineService({
  name: 'worker-gateway',
  config: WorkerGatewayConfig,
  needsDb: false,
  start: async (deps, config) => {
    const { nc, log, subjects } = deps;
    const names = topologyNames(config.subjectPrefix);
    const presence = await new Kvm(nc).open(names.presenceBucket);
    const expected = await ExpectedVersion.open(nc, config, log);
    let stopping = false;
    let workerNumber = 0;
    const workers = new Map<string, WorkerSessionHandle>();
    const notices = new Notices(log, config.logSummaryMs);
    const events = new EventPublisher(nc);
    events.start();
    let presenceRevision = 0;
    const ctx: GatewayContext = {
      nc,
      metrics: deps.metrics,
      js: jetstream(nc),
      events,
      presence,
      presenceWritten: (revision) => (presenceRevision = Math.max(presenceRevision, revision)),
      subjects,
      log,
      config,
      gatewayId: deps.instanceId,
      presenceRefreshMs: config.presenceRefreshMs,
      activity: new ActivityBatcher(nc, subjects),
      updates: new UpdatePolicy({ cooldownMs: config.updateCooldownMs, expectedVersion: () => expected.current }),
      openCredentials: credentialsOpener(config.sealKeys),
      notices,
      jobStatus: new JobStatusLookup(
        (jobId) => call(nc, subjects, jobStatusEndpoint, { jobId }),
        config.jobStatusCacheMs,
      ),
      watchers: new Map(),
      workers,
      nextWorkerNumber: () => ++workerNumber,
      stopping: () => stopping,
    };
    if (config.workerSecret === '') {
      log.warn('PERRY_HUB_WORKER_SECRET is empty: ANY client can register as a worker and receive signing credentials');
    }

    if (config.sealKeys.length === 0) {
      log.warn('PERRY_HUB_CREDENTIALS_KEY is empty: jobs with signing credentials cannot be assigned');
    }
    deps.stampLiveness(() => presenceStamp(workers.values(), presenceRevision));
    const instances = new LivenessView({
      bucket: names.instancesBucket,
      services: ['worker-gateway'],
      ttlMs: config.instanceTtlMs,
    });
    await instances.start(log, nc);
    const view = new PresenceView({
      kv: presence,
      staleMs: config.workerLostMs,
      gatewayState: (id, now) => instances.state(id, now),
      vouchedAt: (id, now) => instances.vouchedAt(id, now),
      log,
    });
    await view.start();
    const stopUpkeep = keepPresence(ctx, view);
    const door = new WsFrontDoor(ctx);
    const wsPort = await door.listen(config.wsPort, config.wsHost);
    const stopHeartbeat = startHeartbeat(ctx, door);
    const stopSampling = deps.metrics.sample(() => sampleConnections(deps.metrics, door.connections));
    deps.ready('websocket', () => (door.listening ? 'ok' : 'WebSocket server not listening'));
    log.info({ port: wsPort, host: config.wsHost }, 'WebSocket server listening');

    deps.serve([
      handle(workersSummaryEndpoint, () => {
        const live = view.live();
        return {
          connectedWorkers: live.length,
          supportedTargets: supportedTargets(live),
          expectedPerryVersion: expected.current,
        };
      }),
      ...adminEndpoints({ ctx, view, expected }),
    ]);

    let stopped: Promise<void> | undefined;
    const stop = async () => {
      stopping = true;
      stopHeartbeat();
      stopUpkeep();
      stopSampling();
      const sessions = [...door.connections].map((c) => c.session);
      await door.close();
      const drained = Promise.all(
        sessions.filter((s): s is WorkerSession => s instanceof WorkerSession).map((s) => s.drained()),
      );
      await Promise.race([drained, new Promise((resolve) => setTimeout(resolve, DRAIN_MS).unref())]);
      for (const conn of door.connections) conn.terminate();
      ctx.activity.flush();
      notices.flush(Date.now(), true);
      view.stop();
      instances.stop();
      expected.stop();
      events.stop();
    };
    return {
      stop: () => (stopped ??= stop()),
      info: {
        wsPort,
        /** Serve `/ws` on another HTTP server (the ingest's, in the all-in-one); returns the detach. */
        attach: (server: Server) => door.attach(server),
        /** Open sockets of this instance, identified or not (for tests and benchmarks). */
        connectionCount: () => door.connections.size,
      },
    };
  },
});

/** Sockets by role, and this instance's workers and free slots by capability (at scrape time). */
function sampleConnections(metrics: HubMetrics, connections: Iterable<Connection>): void {
  for (const conn of connections) {
    const session = conn.session;
    const role = session instanceof WorkerSession ? 'worker' : session instanceof CliSession ? 'cli' : 'unidentified';
    metrics.wsConnections.inc({ role });
    if (!(session instanceof WorkerSession)) continue;
    const free = Math.max(0, session.maxConcurrent - session.activeJobs);
    for (const capability of session.capabilities) {
      metrics.workersConnected.inc({ capability });
      metrics.workerSlotsFree.inc({ capability }, free);
    }
  }
}

/**
 * What this gateway's liveness record says of its workers' entries: every change made before
 * `presenceCurrentAt` was written, at a revision no later than `presenceRevision`. A scheduler
 * leader judges an assignment undelivered on this word only once its own copy of the bucket has
 * reached that revision (a new leader's copy may lag a gateway's record, as after a partition).
 */
export function presenceStamp(
  sessions: Iterable<Pick<WorkerSessionHandle, 'presenceBehindSince'>>,
  presenceRevision: number,
  now = Date.now(),
): { presenceRevision: number; presenceCurrentAt: number } {
  let presenceCurrentAt = now;
  for (const session of sessions) presenceCurrentAt = Math.min(presenceCurrentAt, session.presenceBehindSince ?? now);
  return { presenceRevision, presenceCurrentAt };
}

/**
 * What keeps this instance's presence entries true without heartbeats per worker: after a NATS
 * reconnect every entry is written again (a nats-server that was killed may have lost recent
 * writes), and once per lost limit entries of this instance whose worker is gone (their delete
 * failed) are deleted; readers would otherwise count them as long as this instance lives. The
 * same pass deletes the entries dead gateways left (`PresenceView.abandoned`), each only if it
 * is still the revision judged, so that nothing newer is removed (every live gateway tries: the
 * first delete wins, the others find the revision gone).
 */
function keepPresence(ctx: GatewayContext, view: PresenceView): () => void {
  let stopped = false;
  let clearing: Promise<void> | undefined;
  void (async () => {
    for await (const s of ctx.nc.status()) {
      if (stopped) break;
      if (s.type !== 'reconnect' || ctx.stopping()) continue;
      for (const session of ctx.workers.values()) void session.writePresence();
    }
  })();
  const timer = setInterval(() => {
    if (ctx.stopping()) return;
    for (const workerId of view.keysOf(ctx.gatewayId)) {
      if (ctx.workers.has(workerId)) continue;
      ctx.log.info({ workerId }, 'presence entry of a gone worker deleted');
      void ctx.presence.delete(workerId).catch((err: unknown) => ctx.log.warn({ err }, 'presence delete failed'));
    }
    if (clearing) return;
    const abandoned = view.abandoned();
    if (abandoned.length === 0) return;
    ctx.log.info({ entries: abandoned.length }, "deleting dead gateways' presence entries");
    // One at a time: a dead gateway may leave thousands.
    clearing = (async () => {
      for (const { key, revision } of abandoned) {
        if (stopped) break;
        await ctx.presence
          .delete(key, { previousSeq: revision })
          .catch((err: unknown) => ctx.log.debug({ err, workerId: key }, 'abandoned presence entry not deleted'));
      }
    })().finally(() => (clearing = undefined));
  }, ctx.config.workerLostMs);
  timer.unref();
  return () => {
    stopped = true;
    clearInterval(timer);
  };
}
