/**
 * One connected worker. It is a new worker on every connection (a reconnecting worker gets a new
 * id), it only speaks for the jobs assigned on this connection (defect 19: the original let any
 * worker report on any job), and what it says reaches the bus in the order it said it.
 */
import { randomUUID } from 'node:crypto';
import type { Subscription } from '@nats-io/nats-core';
import type { ReclaimJobReply, WireObject, WorkerLifecycle, WorkerPresence } from '@perry-hub/contracts';
import type { Connection, Session } from './connection.js';
import type { GatewayContext, WorkerSessionHandle } from './context.js';
import type { Hello } from './hello.js';
import { MessageBudget } from './budget.js';
import { Outbox } from './outbox.js';
import { handleCommand } from './commands.js';
import { appendEvents, forwardToScheduler, reclaimJob } from './forward.js';
import { UPDATE_PERRY, parseFrame, stringField } from './wire.js';

/** Progress the CLI watches: appended to the job's event log as the worker wrote it. */
const EVENT_TYPES = new Set(['stage', 'progress', 'log', 'published', 'queue_update']);
/** Outcomes the scheduler decides about (and appends what the CLI should see itself). */
const OUTCOME_TYPES = new Set(['complete', 'error', 'build_complete']);
/** How long a freed slot may wait to be written to presence with what follows it. */
const PRESENCE_SETTLE_MS = 500;
/**
 * A failed presence write is tried again this soon: readers take this gateway's liveness record
 * as saying every entry of it is current, so an entry must not stay behind its worker for long.
 */
const PRESENCE_RETRY_MS = 2_000;
/** Events per log entry at most (a burst of more is stored as several). */
const MAX_BATCH_EVENTS = 256;
/** Bytes per log entry at most: well under the stream's 1 MiB per message. */
const MAX_BATCH_BYTES = 64 * 1024;
/** A refused reclaim is asked again, at most this often (the scheduler may not have released it yet). */
const RECLAIM_RETRY_MS = 1_000;
/** How long a reclaim refused for now (`retry`) is asked again, its messages held meanwhile. */
const RECLAIM_PATIENCE_MS = 10_000;
/** Messages held per job while its reclaim is asked. */
const RECLAIM_HELD_MESSAGES = 256;

/** A job this connection was not given, that the worker speaks of: claimed back, or refused. */
type Reclaim = { pending: { type: string; message: WireObject }[] } | { refusedAt: number };

export interface AssignedJob {
  attempt: number;
  /** The worker sent `complete` for this attempt. */
  finished: boolean;
  /** The scheduler has that `complete` (or we gave up delivering it). */
  reported: boolean;
}

export class WorkerSession implements Session, WorkerSessionHandle {
  readonly workerId = randomUUID();
  readonly jobs = new Map<string, AssignedJob>();
  readonly conn: Connection;
  readonly #ctx: GatewayContext;
  readonly #hello: Hello;
  readonly #outbox: Outbox;
  readonly #connectedAt = Date.now();
  /** What this worker may have relayed per second (progress and logs; outcomes always pass). */
  readonly #budget: MessageBudget;
  #perryVersion: string;
  #lastAssigned: string | undefined;
  #commands: Subscription | undefined;
  #presenceChain: Promise<void> = Promise.resolve();
  #presenceQueued = false;
  #presenceAt = 0;
  #presenceTimer: NodeJS.Timeout | undefined;
  /** Since when the entry has been behind this connection: a write asked for, none begun since. */
  #behindSince: number | undefined;
  /** Since when what the write in flight covers has been behind (undefined: no write in flight). */
  #writingSince: number | undefined;
  /** Numbers this connection's log entries: their Nats-Msg-Id, the same on every retry. */
  #batchSeq = 0;
  #closed = false;
  readonly #reclaims = new Map<string, Reclaim>();

  constructor(ctx: GatewayContext, conn: Connection, hello: Hello) {
    this.#ctx = ctx;
    this.conn = conn;
    this.#hello = hello;
    this.#perryVersion = hello.perryVersion;
    this.#budget = new MessageBudget({
      messagesPerSec: ctx.config.workerMessagesPerSec,
      burstMessages: ctx.config.workerBurstMessages,
      bytesPerSec: ctx.config.workerBytesPerSec,
      burstBytes: ctx.config.workerBurstBytes,
    });
    this.#outbox = new Outbox({
      append: (jobId, events) => appendEvents(ctx, jobId, events, `${this.workerId}:${++this.#batchSeq}`),
      maxBatchEvents: MAX_BATCH_EVENTS,
      maxBatchBytes: MAX_BATCH_BYTES,
      highWater: ctx.config.maxQueuedMessages,
      onPressure: (high) => (high ? conn.pause() : conn.resume()),
      log: conn.log,
    });
  }

  get name(): string {
    return this.#hello.name;
  }

  get capabilities(): readonly string[] {
    return this.#hello.capabilities;
  }

  get maxConcurrent(): number {
    return this.#hello.maxConcurrent;
  }

  get activeJobs(): number {
    let n = 0;
    for (const job of this.jobs.values()) if (!job.finished) n++;
    return n;
  }

  building(jobId: string): boolean {
    const job = this.jobs.get(jobId);
    return job !== undefined && !job.finished;
  }

  /** Register: command subject first (the scheduler may assign as soon as it hears), then presence. */
  async start(): Promise<void> {
    const { nc, subjects, log, gatewayId } = this.#ctx;
    this.#commands = nc.subscribe(subjects.workerCommand(this.workerId), {
      callback: (err, msg) => {
        if (err) return log.error({ err, workerId: this.workerId }, 'command subscription failed');
        void handleCommand(this.#ctx, this, msg);
      },
    });
    this.#ctx.workers.set(this.workerId, this);
    await this.writePresence();
    if (this.#closed) return;
    const connected: WorkerLifecycle = { workerId: this.workerId, gatewayId, at: Date.now(), jobs: [] };
    nc.publish(subjects.workers('connected'), JSON.stringify(connected));
    log.info(
      { workerId: this.workerId, worker: this.name, capabilities: this.#hello.capabilities, remote: this.conn.remote },
      'worker connected',
    );
    if (this.#ctx.updates.atHello(this.name, this.#perryVersion)) {
      log.info({ worker: this.name, perryVersion: this.#perryVersion }, 'worker told to update perry');
      await this.conn.send(UPDATE_PERRY);
    }
  }

  presence(now = Date.now()): WorkerPresence {
    return {
      workerId: this.workerId,
      name: this.name,
      capabilities: this.#hello.capabilities,
      maxConcurrent: this.#hello.maxConcurrent,
      activeJobs: this.activeJobs,
      // Until the scheduler has taken the job's `complete`, the job is this connection's: a new
      // scheduler leader compares this list with its running jobs to find undelivered assignments.
      jobs: [...this.jobs].filter(([, j]) => !j.reported).map(([jobId, j]) => ({ jobId, attempt: j.attempt })),
      perryVersion: this.#perryVersion,
      gatewayId: this.#ctx.gatewayId,
      connectedAt: this.#connectedAt,
      heartbeatAt: now,
    };
  }

  /**
   * A slot taken or freed is told within PRESENCE_SETTLE_MS, in one write with what happens
   * meanwhile (on a busy worker, its other builds' starts and ends): every write reaches each
   * watcher of the bucket, and nobody needs a slot's change sooner (the scheduler counts slots
   * itself).
   */
  #writePresenceSoon(delayMs = PRESENCE_SETTLE_MS): void {
    this.#behindSince ??= Date.now();
    if (this.#presenceTimer !== undefined || this.#closed) return;
    this.#presenceTimer = setTimeout(() => void this.writePresence(), delayMs);
    this.#presenceTimer.unref();
  }

  /** Coalesced and ordered: at most one write waits behind the running one, and a delete ends it. */
  writePresence(): Promise<void> {
    clearTimeout(this.#presenceTimer);
    this.#presenceTimer = undefined;
    if (this.#closed) return this.#presenceChain;
    this.#behindSince ??= Date.now();
    if (this.#presenceQueued) return this.#presenceChain;
    this.#presenceQueued = true;
    this.#presenceChain = this.#presenceChain.then(async () => {
      this.#presenceQueued = false;
      if (this.#closed) return;
      this.#presenceAt = Date.now();
      // What changes after this point is the next write's to cover.
      [this.#writingSince, this.#behindSince] = [this.#behindSince ?? this.#presenceAt, undefined];
      try {
        const revision = await this.#ctx.presence.put(this.workerId, JSON.stringify(this.presence(this.#presenceAt)));
        this.#ctx.presenceWritten(revision);
      } catch (err) {
        this.#behindSince = Math.min(this.#writingSince, this.#behindSince ?? Infinity);
        this.conn.log.warn({ err, workerId: this.workerId }, 'presence write failed');
        this.#writePresenceSoon(PRESENCE_RETRY_MS);
      } finally {
        this.#writingSince = undefined;
      }
    });
    return this.#presenceChain;
  }

  /**
   * Since when the worker's entry has been behind what this connection knows (a change not yet
   * written and acknowledged); undefined when it is current. This gateway's liveness record
   * vouches for its entries only as of the oldest of these (`presenceCurrentAt`).
   */
  get presenceBehindSince(): number | undefined {
    if (this.#writingSince === undefined) return this.#behindSince;
    return Math.min(this.#writingSince, this.#behindSince ?? Infinity);
  }

  /**
   * Called by the gateway's sweep: rewrite the entry when due (PERRY_HUB_PRESENCE_REFRESH_MS, a
   * backstop: while this gateway's liveness record is fresh, readers take it as every one of its
   * workers' heartbeat, so an idle worker costs no bus traffic).
   */
  tick(now: number): void {
    if (now - this.#presenceAt >= this.#ctx.presenceRefreshMs) void this.writePresence();
  }

  async requestUpdate(): Promise<boolean> {
    if (this.#closed || this.activeJobs > 0) return false;
    this.#ctx.updates.told(this.name);
    return this.conn.send(UPDATE_PERRY);
  }

  /** The command handler records an assignment before writing it, so the first reply is routed. */
  assigned(jobId: string, attempt: number): void {
    // A long-lived connection builds thousands of jobs: forget the ones the scheduler has closed.
    for (const [id, job] of this.jobs) if (job.finished && job.reported) this.jobs.delete(id);
    this.jobs.set(jobId, { attempt, finished: false, reported: false });
    this.#lastAssigned = jobId;
    // Settled like a freed slot: the scheduler counts slots itself, and judges an assignment
    // undelivered only by a presence written seconds after it (UNDELIVERED_GRACE_MS).
    this.#writePresenceSoon();
  }

  unassigned(jobId: string, attempt: number): void {
    if (this.jobs.get(jobId)?.attempt === attempt) this.jobs.delete(jobId);
    this.#writePresenceSoon();
  }

  /**
   * Every frame spends the worker's budget; over it, progress and logs are dropped (one summary
   * line per interval says how many), while outcomes (`complete`, `error`, ...) always pass: a
   * flooding worker loses its own chatter, never its build's result, and cannot slow the others.
   */
  onMessage(text: string): void {
    const withinBudget = this.#budget.allow(Buffer.byteLength(text, 'utf8'));
    const message = parseFrame(text);
    if (!message) {
      this.#ctx.notices.note('worker frame dropped: not a JSON object', { workerId: this.workerId, worker: this.name });
      return;
    }
    const type = stringField(message, 'type');
    if (type === 'worker_hello') return; // a second hello is ignored
    if (type === 'update_result') return this.#updateResult(message);
    if (type === 'artifact_ready') {
      // Path-based, from a worker that shares the hub's filesystem: there is none to share.
      this.#ctx.notices.note('legacy artifact_ready dropped', { workerId: this.workerId, jobId: message['job_id'] });
      return;
    }
    if (type === undefined || (!EVENT_TYPES.has(type) && !OUTCOME_TYPES.has(type))) return;
    if (!withinBudget && EVENT_TYPES.has(type)) {
      this.#ctx.notices.note('worker messages dropped: over the rate limit', {
        workerId: this.workerId,
        worker: this.name,
      });
      return;
    }
    // The Windows worker's early `error` has no job_id: the original fell back to the last job.
    const named = stringField(message, 'job_id');
    const jobId = named ?? this.#lastAssigned;
    const job = jobId === undefined ? undefined : this.jobs.get(jobId);
    if (named !== undefined && !job) return this.#reclaim(named, type, message);
    if (jobId === undefined || !job) return this.#dropForeign(jobId, type);
    this.#route(jobId, job, type, message);
  }

  /**
   * The worker speaks of a job this connection was not given: a build it went on with while it
   * reconnected (a hub restart or a gateway crash). The scheduler hands it back if the job still
   * waits for this worker; its messages are held meanwhile, then passed on in order, or dropped.
   * A failure reported first is the build dying with its old connection: nothing to go on with.
   */
  #reclaim(jobId: string, type: string, message: WireObject): void {
    const known = this.#reclaims.get(jobId);
    if (known && 'pending' in known) {
      if (known.pending.length < RECLAIM_HELD_MESSAGES) known.pending.push({ type, message });
      return;
    }
    const failed = type === 'error' || (type === 'complete' && message['success'] !== true);
    const tooSoon = known !== undefined && Date.now() - known.refusedAt < RECLAIM_RETRY_MS;
    if (failed || tooSoon || (!known && !this.#mayAskReclaim())) return this.#dropForeign(jobId, type);
    const asking = { pending: [{ type, message }] };
    this.#reclaims.set(jobId, asking);
    const { gatewayId } = this.#ctx;
    const since = Date.now();
    const ask = async (): Promise<ReclaimJobReply> => {
      const reply = await reclaimJob(this.#ctx, { jobId, workerId: this.workerId, workerName: this.name, gatewayId });
      // The old connection's loss is still on its way to the scheduler: its messages wait here.
      if (reply.retry && !this.#closed && Date.now() - since < RECLAIM_PATIENCE_MS) {
        await new Promise((resolve) => setTimeout(resolve, RECLAIM_RETRY_MS / 4));
        return ask();
      }
      return reply;
    };
    void ask().then((reply) => {
      if (!reply.accepted || reply.attempt === undefined) {
        this.#reclaims.set(jobId, { refusedAt: Date.now() });
        for (const held of asking.pending) this.#dropForeign(jobId, held.type);
        return;
      }
      this.#reclaims.delete(jobId);
      const job: AssignedJob = { attempt: reply.attempt, finished: false, reported: false };
      this.conn.log.info({ jobId, attempt: reply.attempt, worker: this.name }, 'build reclaimed after a reconnect');
      if (this.#closed) {
        // Gone again while asking: lost like the others (onClose already reported those), or
        // handed back with them when this gateway is stopping.
        if (this.#ctx.stopping()) return;
        const lost: WorkerLifecycle = {
          workerId: this.workerId,
          gatewayId,
          at: Date.now(),
          jobs: [{ jobId, attempt: reply.attempt }],
        };
        this.#ctx.nc.publish(this.#ctx.subjects.workers('lost'), JSON.stringify(lost));
        return;
      }
      this.jobs.set(jobId, job);
      void this.writePresence();
      for (const held of asking.pending) this.#route(jobId, job, held.type, held.message);
    });
  }

  /**
   * A worker has at most its slots' worth of builds to claim back: a few asks at a time, a few
   * jobs per connection. Whatever else it says about jobs it was not given is dropped unasked.
   */
  #mayAskReclaim(): boolean {
    const slots = Math.max(2, this.#hello.maxConcurrent);
    let asking = 0;
    for (const r of this.#reclaims.values()) if ('pending' in r) asking++;
    return asking < slots && this.#reclaims.size < 4 * slots;
  }

  /** A message about a job of this connection: to the job's log, or to the scheduler. */
  #route(jobId: string, job: AssignedJob, type: string, message: WireObject): void {
    this.#ctx.activity.touch(jobId, job.attempt);
    if (EVENT_TYPES.has(type)) {
      if (type === 'log') this.#ctx.metrics.logLinesRelayed.inc();
      return this.#append(jobId, message);
    }
    if (type === 'complete') {
      job.finished = true;
      this.#writePresenceSoon();
    }
    const attempt = job.attempt;
    this.#outbox.push({
      kind: 'barrier',
      run: async () => {
        await forwardToScheduler(this.#ctx, {
          workerId: this.workerId,
          workerName: this.name,
          jobId,
          attempt,
          message,
        });
        if (type === 'complete') job.reported = true;
      },
    });
  }

  #append(jobId: string, message: WireObject): void {
    if (message['type'] === 'stage') {
      this.conn.log.info(
        { jobId, stage: stringField(message, 'stage'), message: stringField(message, 'message'), worker: this.name },
        'build stage',
      );
    }
    this.#outbox.push({ kind: 'event', jobId, data: JSON.stringify(message) });
  }

  #updateResult(message: WireObject): void {
    const version = stringField(message, 'new_version');
    if (message['success'] === true && version) {
      this.#perryVersion = version;
      void this.writePresence();
    }
    this.conn.log.info(
      { workerId: this.workerId, worker: this.name, success: message['success'], version, error: message['error'] },
      'perry update result',
    );
  }

  #dropForeign(jobId: string | undefined, type: string): void {
    this.#ctx.notices.note('worker message for a job not assigned here dropped', {
      workerId: this.workerId,
      worker: this.name,
      jobId: jobId?.slice(0, 64),
      type,
    });
  }

  /**
   * The socket is gone: stop taking commands, vanish from presence, then tell the bus. Not when
   * this gateway is stopping: its workers did nothing wrong, so their jobs must not be lost (a
   * retry counted). Their presence stays until the gateway's liveness record goes with its stop;
   * the scheduler then releases them and re-queues their jobs, which is not a retry.
   */
  onClose(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#presenceTimer);
    this.#commands?.unsubscribe();
    this.#ctx.workers.delete(this.workerId);
    if (this.#ctx.stopping()) {
      this.conn.log.info({ workerId: this.workerId, name: this.name }, 'worker handed back: the gateway is stopping');
      return;
    }
    const { presence, nc, subjects, gatewayId, log } = this.#ctx;
    this.#presenceChain = this.#presenceChain.then(() =>
      presence.delete(this.workerId).catch((err: unknown) => log.warn({ err }, 'presence delete failed')),
    );
    // After everything the worker said: a `complete` still being delivered is not a lost job.
    this.#outbox.push({
      kind: 'barrier',
      run: async () => {
        const jobs = [...this.jobs].filter(([, j]) => !j.reported).map(([jobId, j]) => ({ jobId, attempt: j.attempt }));
        const lost: WorkerLifecycle = { workerId: this.workerId, gatewayId, at: Date.now(), jobs };
        nc.publish(subjects.workers('lost'), JSON.stringify(lost));
        log.info({ workerId: this.workerId, worker: this.name, jobs }, 'worker lost');
      },
    });
  }

  /** Resolves when everything this worker said has reached the bus. */
  async drained(): Promise<void> {
    await this.#outbox.idle();
    await this.#presenceChain;
  }
}
