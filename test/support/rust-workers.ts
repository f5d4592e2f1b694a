/**
 * Simulated Rust build workers (builder-linux, builder-macos, builder-windows) that speak exactly
 * like the real ones (reference 2.4, 2.7, 6 and 8.2): the same hello, the same serde key order,
 * the same HTTP transfers and heartbeats, the same reconnect habits. Builds are scripted per job
 * (duration, failure, hang, disconnect mid-job, failed upload), and everything the workers did
 * is recorded in a history that may be shared by many workers, for fault tests to check.
 *
 *   const history = new WorkerHistory();
 *   const linux = linuxWorker({ url: 'ws://127.0.0.1:3457', secret, history });
 *   await linux.connected();
 *   ...
 *   await linux.stop();
 */
import { WebSocket } from 'ws';
import { runJob, type JobAssign, type JobScript, type RunningJob } from './rust-worker-jobs.js';
import { hello, updateResult, type WorkerKind } from './rust-wire.js';

export type { JobAssign, JobScript } from './rust-worker-jobs.js';
export type { WorkerKind } from './rust-wire.js';
export { WorkerHistory } from './rust-worker-jobs.js';
import { WorkerHistory } from './rust-worker-jobs.js';

export interface SimulatedWorkerOptions {
  /** `PERRY_HUB_URL`: the WebSocket URL (any path on the WS port, or `/ws` on the HTTP port). */
  readonly url: string;
  /** `PERRY_WORKER_NAME` (the real default is the hostname). */
  readonly name?: string;
  /** `PERRY_HUB_WORKER_SECRET`; omitted from the hello when undefined. */
  readonly secret?: string;
  /** Output of `perry --version`; omitted from the hello when undefined (the command failed). */
  readonly perryVersion?: string;
  /** `PERRY_MAX_CONCURRENT_BUILDS` (Linux and macOS; default 2). The Windows worker has none. */
  readonly maxConcurrent?: number;
  /** Real workers wait 5 s before reconnecting; tests shorten it. */
  readonly reconnectDelayMs?: number;
  /** macOS and Windows ping every 30 s. */
  readonly pingIntervalMs?: number;
  /** macOS drops a connection on which nothing arrived for 90 s. */
  readonly staleTimeoutMs?: number;
  /** How each job goes; default: succeeds quickly. */
  readonly script?: (job: JobAssign) => JobScript | undefined;
  /** What an update does: the version it installs ('' and an error make it fail), and how long it takes. */
  readonly update?: { readonly toVersion: string; readonly error?: string; readonly durationMs?: number };
  /** Shared record of what happened (jobs started, completes sent, uploads, connections). */
  readonly history?: WorkerHistory;
}

export class SimulatedWorker {
  readonly kind: WorkerKind;
  readonly name: string;
  readonly history: WorkerHistory;
  /** Every frame received, as text, across connections. */
  readonly received: string[] = [];
  /** Every frame sent, as text, across connections. */
  readonly sent: string[] = [];
  readonly jobs = new Map<string, RunningJob>();
  perryVersion: string | undefined;
  connections = 0;
  readonly #options: SimulatedWorkerOptions;
  #ws: WebSocket | undefined;
  #stopped = false;
  #backoffMs = 1_000;
  #lastFrameAt = 0;
  #timers: NodeJS.Timeout[] = [];
  #waiters: (() => void)[] = [];
  #windowsQueue: JobAssign[] = [];

  constructor(kind: WorkerKind, options: SimulatedWorkerOptions) {
    this.kind = kind;
    this.#options = options;
    this.name = options.name ?? `sim-${kind}-${Math.random().toString(36).slice(2, 8)}`;
    this.perryVersion = options.perryVersion;
    this.history = options.history ?? new WorkerHistory();
    this.#connect();
    const pingMs = options.pingIntervalMs ?? 30_000;
    if (kind !== 'linux') this.#timers.push(setInterval(() => this.#heartbeat(), Math.min(pingMs, 1_000)));
  }

  get open(): boolean {
    return this.#ws?.readyState === WebSocket.OPEN;
  }

  get activeJobs(): number {
    return [...this.jobs.values()].filter((j) => !j.done).length;
  }

  /** Resolves when the current (or next) connection has sent its hello. */
  connected(): Promise<void> {
    if (this.open) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /** Send a text frame on the current connection (dropped while disconnected, like the real channel). */
  send(text: string): boolean {
    if (!this.open) return false;
    this.sent.push(text);
    this.#ws!.send(text);
    return true;
  }

  /** Cut the connection without a close frame; the worker reconnects as it normally would. */
  dropConnection(): void {
    this.#ws?.terminate();
  }

  /** Close cleanly and stay away (running builds are abandoned). */
  async stop(): Promise<void> {
    this.#stopped = true;
    for (const t of this.#timers) clearInterval(t);
    for (const job of this.jobs.values()) job.abandon();
    const ws = this.#ws;
    if (!ws || ws.readyState === WebSocket.CLOSED) return;
    await new Promise<void>((resolve) => {
      ws.once('close', () => resolve());
      ws.close();
      setTimeout(() => ws.terminate(), 1_000).unref();
    });
  }

  #connect(): void {
    if (this.#stopped) return;
    const ws = new WebSocket(this.#options.url, { perMessageDeflate: false });
    this.#ws = ws;
    let cleanClose = false;
    ws.on('open', () => {
      this.connections++;
      this.history.connections.push({ worker: this.name, at: Date.now() });
      this.#lastFrameAt = Date.now();
      this.send(
        hello(this.kind, {
          name: this.name,
          secret: this.#options.secret,
          perryVersion: this.perryVersion,
          maxConcurrent: this.#options.maxConcurrent ?? 2,
        }),
      );
      for (const w of this.#waiters.splice(0)) w();
    });
    ws.on('message', (data: Buffer) => {
      this.#lastFrameAt = Date.now();
      this.#onMessage(data.toString('utf8'));
    });
    ws.on('ping', () => (this.#lastFrameAt = Date.now()));
    ws.on('pong', () => (this.#lastFrameAt = Date.now()));
    ws.on('error', () => undefined);
    ws.on('close', (code: number) => {
      cleanClose = code === 1000;
      if (this.#ws !== ws) return;
      this.#ws = undefined;
      // The Windows job loop dies with its connection (W/worker.rs:503-525).
      if (this.kind === 'windows') for (const job of this.jobs.values()) job.abandon();
      this.#scheduleReconnect(cleanClose);
    });
  }

  /** Linux and Windows: a fixed delay. macOS: the delay after a clean close, else 1, 2, 4 ... 60 s. */
  #scheduleReconnect(clean: boolean): void {
    if (this.#stopped) return;
    const fixed = this.#options.reconnectDelayMs ?? 5_000;
    let delay = fixed;
    if (this.kind === 'macos' && !clean) {
      // Scaled like the fixed delay when a test shortens it (5 s real).
      delay = Math.round((this.#backoffMs * fixed) / 5_000);
      this.#backoffMs = Math.min(this.#backoffMs * 2, 60_000);
    } else this.#backoffMs = 1_000;
    setTimeout(() => this.#connect(), delay).unref();
  }

  #heartbeat(): void {
    const ws = this.#ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return;
    const now = Date.now();
    const pingMs = this.#options.pingIntervalMs ?? 30_000;
    if (this.kind === 'macos' && now - this.#lastFrameAt > (this.#options.staleTimeoutMs ?? 90_000)) {
      ws.terminate(); // "no frame of any kind" for too long: drop and reconnect
      return;
    }
    if (this.kind === 'windows' && this.activeJobs > 0) return; // pings only while idle
    const last = (ws as unknown as { lastPingAt?: number }).lastPingAt ?? 0;
    if (now - last >= pingMs) {
      (ws as unknown as { lastPingAt?: number }).lastPingAt = now;
      ws.ping();
    }
  }

  #onMessage(text: string): void {
    this.received.push(text);
    let message: { type?: unknown; job_id?: unknown } & Record<string, unknown>;
    try {
      message = JSON.parse(text) as typeof message;
    } catch {
      return;
    }
    // Anything but these three fails serde's `HubMessage` and is logged and ignored.
    if (message.type === 'job_assign') this.#onAssign(message as unknown as JobAssign);
    else if (message.type === 'cancel' && typeof message.job_id === 'string') this.#onCancel(message.job_id);
    else if (message.type === 'update_perry') this.#onUpdate();
  }

  #onAssign(assign: JobAssign): void {
    if (typeof assign.job_id !== 'string' || typeof assign.tarball_url !== 'string') return;
    if (this.kind === 'windows' && this.activeJobs > 0) {
      this.#windowsQueue.push(assign); // one job at a time
      return;
    }
    this.#start(assign);
  }

  #start(assign: JobAssign): void {
    const script = this.#options.script?.(assign) ?? {};
    const job = runJob(this, assign, script, () => {
      const next = this.#windowsQueue.shift();
      if (next) this.#start(next);
    });
    this.jobs.set(assign.job_id, job);
  }

  #onCancel(jobId: string): void {
    const job = this.jobs.get(jobId);
    // Windows honours a cancel only for the job it is building (W/worker.rs:503-514).
    if (job && !job.done) job.cancel();
  }

  #onUpdate(): void {
    const update = this.#options.update;
    if (this.kind !== 'windows' && this.activeJobs > 0) return; // deferred requests are dropped
    const old = this.perryVersion ?? '';
    setTimeout(() => {
      if (update && !update.error && update.toVersion) {
        this.perryVersion = update.toVersion;
        this.send(updateResult(true, old, update.toVersion));
      } else {
        this.send(updateResult(false, old, '', update?.error ?? 'Update failed'));
      }
      this.history.updates.push({ worker: this.name, at: Date.now(), to: this.perryVersion ?? '' });
    }, update?.durationMs ?? 10).unref();
  }
}

export type WorkerOptions = SimulatedWorkerOptions;

/** builder-linux: cross-compiles everything; never pings; `needs_finishing` for windows/ios/macos. */
export const linuxWorker = (options: WorkerOptions) => new SimulatedWorker('linux', options);
/** builder-macos: sign-only (`macos-sign`, `ios-sign`); pings every 30 s, drops after 90 s of silence. */
export const macosWorker = (options: WorkerOptions) => new SimulatedWorker('macos', options);
/** builder-windows: `windows-sign`; no `max_concurrent`; pings only while idle; one job at a time. */
export const windowsWorker = (options: WorkerOptions) => new SimulatedWorker('windows', options);
