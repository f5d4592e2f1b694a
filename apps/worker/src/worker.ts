/**
 * The worker's connection to the hub (reference 2): `worker_hello` on every connection, pings
 * and a stale-connection check, reconnects with exponential backoff and jitter, and the hub's
 * three commands: `job_assign`, `cancel`, `update_perry`. A lost connection does not stop the
 * builds; see job.ts for how their results reach the hub again.
 */
import { WebSocket } from 'ws';
import type { Logger } from 'pino';
import type { WorkerConfig } from './config.js';
import type { UploadMode } from './artifacts.js';
import { Job, type JobHost } from './job.js';
import { perryVersion, runUpdate } from './perry.js';
import * as wire from './wire.js';

const MAX_KEPT_SENT = 10_000;

export interface WorkerOptions {
  readonly config: WorkerConfig;
  readonly log: Logger;
  /** Take one job, deliver it, and stop (an ephemeral worker). */
  readonly once?: boolean;
  /** Called with each build command's process group id (tests check none outlives its job). */
  readonly onCommandStart?: (jobId: string, pid: number) => void;
}

/** Why the worker stopped: asked to, its one job done, or the hub refused it for good. */
export type WorkerExit = { kind: 'stopped' } | { kind: 'once-done' } | { kind: 'refused'; message: string };

export class Worker implements JobHost {
  readonly config: WorkerConfig;
  readonly log: Logger;
  readonly uploadMode: UploadMode = { raw: undefined };
  readonly jobs = new Map<string, Job>();
  readonly exited: Promise<WorkerExit>;
  /** Frames sent, across connections, about the latest 10,000 (for tests and debugging). */
  readonly sent: string[] = [];
  /** The hub's frames with when they arrived, latest 1,000 (for tests and debugging). */
  readonly received: { at: number; frame: string }[] = [];
  connections = 0;
  perryVersion: string | undefined;
  readonly #options: WorkerOptions;
  #ws: WebSocket | undefined;
  #epoch = 0;
  #stopping = false;
  #failures = 0;
  #lastHeard = 0;
  #updating = false;
  #timers = new Set<NodeJS.Timeout>();
  #waiters = new Set<() => void>();
  #exit!: (e: WorkerExit) => void;

  constructor(options: WorkerOptions) {
    this.#options = options;
    this.config = options.config;
    this.log = options.log;
    this.exited = new Promise((resolve) => (this.#exit = resolve));
  }

  get perryBinary(): string {
    return this.config.perryBinary;
  }

  get open(): boolean {
    return this.#ws?.readyState === WebSocket.OPEN;
  }

  get activeJobs(): number {
    let n = 0;
    for (const j of this.jobs.values()) if (!j.done) n++;
    return n;
  }

  onCommandStart(jobId: string, pid: number): void {
    this.#options.onCommandStart?.(jobId, pid);
  }

  async start(): Promise<void> {
    this.perryVersion = await perryVersion(this.config.perryBinary);
    if (this.perryVersion === undefined) {
      this.log.warn(
        { binary: this.config.perryBinary },
        'the Perry compiler did not answer --version: the hello carries no perry_version' +
          (Object.values(this.config.targets).some((t) => t.compile.includes('$PERRY_BIN'))
            ? ', and builds that run it will fail'
            : ''),
      );
    }
    const ping = setInterval(() => this.#heartbeat(), Math.min(this.config.pingIntervalMs, 1_000));
    this.#timers.add(ping);
    this.#connect();
  }

  /** Resolves once a connection said hello (for tests and --once). */
  connected(): Promise<void> {
    if (this.open) return Promise.resolve();
    return new Promise((resolve) => {
      const w = () => (this.#waiters.delete(w), resolve());
      this.#waiters.add(w);
    });
  }

  /**
   * Stop: close the connection and kill running builds without reporting them (the hub gives
   * them to another worker, as after any lost worker).
   */
  async stop(): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    for (const t of this.#timers) clearTimeout(t); // intervals too: one timer table in Node
    for (const job of this.jobs.values()) job.stop('shutdown');
    this.#wake();
    const ws = this.#ws;
    if (ws && ws.readyState !== WebSocket.CLOSED) {
      await new Promise<void>((resolve) => {
        ws.once('close', () => resolve());
        ws.close(1000, 'worker stopping');
        setTimeout(() => (ws.terminate(), resolve()), 2_000).unref();
      });
    }
    await Promise.all([...this.jobs.values()].map((j) => j.finished));
    this.#exit({ kind: 'stopped' });
  }

  /** Cut the connection without a close frame (tests: a network failure). */
  dropConnection(): void {
    this.#ws?.terminate();
  }

  #connect(): void {
    if (this.#stopping) return;
    const ws = new WebSocket(this.config.hubUrl, { perMessageDeflate: false, handshakeTimeout: 15_000 });
    this.#ws = ws;
    ws.on('open', () => {
      this.#epoch++;
      this.connections++;
      this.#failures = 0;
      this.#lastHeard = Date.now();
      this.#sendRaw(
        wire.hello({
          capabilities: this.config.capabilities,
          name: this.config.name,
          secret: this.config.secret,
          perryVersion: this.perryVersion,
          // --once takes a single job: one slot, so the hub never sends a second.
          maxConcurrent: this.#options.once ? 1 : this.config.maxConcurrent,
        }),
      );
      this.log.info(
        { url: this.config.hubUrl, name: this.config.name, connection: this.connections },
        'connected to the hub',
      );
      // Builds that outlived the last connection speak up on this one: a hub that released them
      // at a restart or a crash hands them back (same attempt) rather than building them again.
      for (const job of this.jobs.values()) {
        if (job.done || job.epoch === this.#epoch) continue;
        job.reattach(this.#epoch);
        this.#flush(job);
      }
      this.#wake();
    });
    ws.on('message', (data: Buffer) => {
      this.#lastHeard = Date.now();
      this.#onFrame(data.toString('utf8'));
    });
    ws.on('ping', () => (this.#lastHeard = Date.now()));
    ws.on('pong', () => (this.#lastHeard = Date.now()));
    ws.on('error', (err) => this.log.debug({ err: err.message }, 'connection error'));
    ws.on('close', (code: number) => {
      if (this.#ws !== ws) return;
      this.#ws = undefined;
      if (this.#stopping) return;
      const delay = this.#backoff();
      this.log.warn(
        { code, retryInMs: delay, runningJobs: this.activeJobs },
        this.connections === 0 ? 'cannot reach the hub; retrying' : 'connection to the hub lost; reconnecting',
      );
      const t = setTimeout(() => (this.#timers.delete(t), this.#connect()), delay);
      this.#timers.add(t);
    });
  }

  /** Exponential from PERRY_WORKER_RECONNECT_MIN_MS up to _MAX_MS, each delay drawn from its upper half. */
  #backoff(): number {
    const base = Math.min(this.config.reconnectMaxMs, this.config.reconnectMinMs * 2 ** this.#failures);
    this.#failures = Math.min(this.#failures + 1, 30);
    return Math.round(base / 2 + (Math.random() * base) / 2);
  }

  #heartbeat(): void {
    const ws = this.#ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return;
    const now = Date.now();
    if (now - this.#lastHeard > this.config.staleTimeoutMs) {
      this.log.warn({ silentMs: now - this.#lastHeard }, 'nothing heard from the hub; reconnecting');
      ws.terminate();
      return;
    }
    const state = ws as unknown as { lastPingAt?: number };
    if (now - (state.lastPingAt ?? 0) >= this.config.pingIntervalMs) {
      state.lastPingAt = now;
      ws.ping();
    }
  }

  #sendRaw(frame: string): boolean {
    const ws = this.#ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    this.sent.push(frame);
    if (this.sent.length > MAX_KEPT_SENT + 1_000) this.sent.splice(0, 1_000);
    ws.send(frame);
    return true;
  }

  send(job: Job, frame: string): void {
    if (job.epoch === this.#epoch && this.open && job.pending.length === 0) {
      this.#sendRaw(frame);
      return;
    }
    job.queue(frame);
    this.#flush(job);
  }

  #flush(job: Job): void {
    if (job.epoch !== this.#epoch || !this.open) return;
    if (job.droppedPending > 0) {
      this.log.warn({ jobId: job.id, dropped: job.droppedPending }, 'messages of a disconnected job were dropped');
      job.droppedPending = 0;
    }
    for (const frame of job.pending.splice(0)) this.#sendRaw(frame);
  }

  deliverable(job: Job, deadline: number): Promise<boolean> {
    return new Promise((resolve) => {
      const check = (): boolean => {
        if (this.#stopping) return (resolve(false), true);
        if (job.epoch === this.#epoch && this.open) {
          this.#flush(job);
          return (resolve(true), true);
        }
        if (Date.now() >= deadline) return (resolve(false), true);
        return false;
      };
      if (check()) return;
      const timer = setTimeout(() => {
        this.#waiters.delete(w);
        resolve(false);
      }, deadline - Date.now());
      const w = () => {
        if (check()) {
          clearTimeout(timer);
          this.#waiters.delete(w);
        }
      };
      this.#waiters.add(w);
    });
  }

  #wake(): void {
    for (const w of [...this.#waiters]) w();
  }

  #onFrame(text: string): void {
    const frame = wire.parseHubFrame(text);
    // Never kept: an assignment's credentials (signing keys) and token.
    const kept =
      frame.type === 'job_assign'
        ? JSON.stringify({ type: 'job_assign', job_id: frame.assign.job_id })
        : text.length > 2_000
          ? `${text.slice(0, 2_000)}…`
          : text;
    this.received.push({ at: Date.now(), frame: kept });
    if (this.received.length > 1_000) this.received.shift();
    switch (frame.type) {
      case 'job_assign':
        return this.#onAssign(frame.assign);
      case 'cancel': {
        const job = this.jobs.get(frame.jobId);
        if (job && !job.done) {
          this.log.info({ jobId: frame.jobId }, 'cancel: stopping the build');
          job.stop('cancelled');
        }
        return;
      }
      case 'update_perry':
        void this.#onUpdate();
        return;
      case 'error':
        // The hub refuses this worker (a wrong secret, a hello it does not accept) and closes.
        if (frame.code === 'AUTH_FAILED' || /worker_hello/.test(frame.message)) {
          const message =
            frame.code === 'AUTH_FAILED'
              ? "the hub refused the worker secret: set PERRY_HUB_WORKER_SECRET to the hub's value"
              : `the hub refused this worker: ${frame.message}`;
          this.log.error({ code: frame.code }, message);
          void this.stop().then(() => undefined);
          this.#exit({ kind: 'refused', message });
          return;
        }
        this.log.warn({ code: frame.code, message: frame.message }, 'error from the hub');
        return;
      default:
        this.log.debug({ frame: frame.raw }, 'ignored a frame from the hub');
    }
  }

  #onAssign(assign: wire.JobAssign): void {
    const existing = this.jobs.get(assign.job_id);
    if (existing && !existing.done && sameTargets(existing.assign, assign)) {
      this.log.info({ jobId: assign.job_id }, 'job assigned again: carrying on with the build already under way');
      existing.adopt(assign, this.#epoch);
      this.#flush(existing);
      this.#wake();
      return;
    }
    if (this.activeJobs >= this.config.maxConcurrent) {
      this.log.warn({ jobId: assign.job_id, active: this.activeJobs }, 'more jobs than slots: taking it anyway');
    }
    const job = new Job(this, assign, this.#epoch);
    this.jobs.set(assign.job_id, job);
    void job.finished.then(() => {
      if (this.jobs.get(job.id) === job) this.jobs.delete(job.id);
      if (this.#options.once && this.activeJobs === 0) {
        void this.#closeAfterOnce();
      }
    });
  }

  async #closeAfterOnce(): Promise<void> {
    this.log.info('--once: the job is done; stopping');
    await this.stop();
    this.#exit({ kind: 'once-done' });
  }

  async #onUpdate(): Promise<void> {
    const old = this.perryVersion ?? '';
    const answer = (ok: boolean, version: string, error?: string) =>
      this.#sendRaw(wire.updateResult(ok, old, version, error));
    if (this.#updating) return void answer(false, '', 'Update already in progress');
    if (this.activeJobs > 0) return void answer(false, '', 'Builds are running; update declined');
    if (this.config.updateCommand === undefined) {
      this.log.info('update_perry: declined (PERRY_WORKER_UPDATE_COMMAND is not set)');
      return void answer(
        false,
        '',
        'This worker does not update Perry itself (PERRY_WORKER_UPDATE_COMMAND is not set)',
      );
    }
    this.#updating = true;
    try {
      this.log.info('update_perry: running PERRY_WORKER_UPDATE_COMMAND');
      const result = await runUpdate(this.config.updateCommand);
      const now = await perryVersion(this.config.perryBinary);
      if (!result.ok || now === undefined) {
        answer(false, '', `Update failed: ${result.output.split('\n').slice(-3).join(' ') || 'no output'}`);
        return;
      }
      this.perryVersion = now;
      answer(true, now);
    } finally {
      this.#updating = false;
    }
  }
}

function sameTargets(a: wire.JobAssign, b: wire.JobAssign): boolean {
  return JSON.stringify(a.manifest['targets']) === JSON.stringify(b.manifest['targets']);
}

export async function startWorker(options: WorkerOptions): Promise<Worker> {
  const worker = new Worker(options);
  await worker.start();
  return worker;
}
