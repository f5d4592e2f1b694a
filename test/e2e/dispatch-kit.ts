/**
 * Shared pieces of the dispatch acceptance tests: a hub with its workers (all stopped in one
 * place), a WebSocket watcher that subscribes like any client and may cancel, a `perry publish`
 * whose job id is known as soon as the hub answered, the build record as the scheduler reads it
 * from MySQL, and a deadline-bound wait for anything observable.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import { WebSocket } from 'ws';
import { jobStatusEndpoint, subjects, type JobStatus } from '@perry-hub/contracts';
import { call } from '@perry-hub/runtime';
import type { ServiceEnvInput } from '@perry-hub/testkit';
import { perryPublish, type PublishOptions, type PublishResult } from '../support/perry-cli.js';
import {
  WorkerHistory,
  linuxWorker,
  macosWorker,
  windowsWorker,
  type SimulatedWorker,
  type WorkerKind,
  type WorkerOptions,
} from '../support/rust-workers.js';
import {
  ADMIN_SECRET,
  CREDENTIALS,
  MANIFEST,
  WORKER_SECRET,
  startTestHub,
  tarball,
  type TestHub,
  type TestHubOptions,
} from '../support/test-hub.js';
import { connectTestNats, until } from '@perry-hub/testkit';

export { until };

const WORKERS = { linux: linuxWorker, macos: macosWorker, windows: windowsWorker } as const;

export interface Scenario {
  readonly hub: TestHub;
  readonly history: WorkerHistory;
  /** Connect a simulated Rust worker and wait until the hub lists it (by name). */
  worker(kind: WorkerKind, options?: Partial<WorkerOptions>): Promise<SimulatedWorker>;
  /** A worker that may never be counted (refused, or started from a callback). */
  spawn(kind: WorkerKind, options?: Partial<WorkerOptions>): SimulatedWorker;
  /** The build record's status, as the scheduler reads it from MySQL. */
  status(jobId: string): Promise<{ status: JobStatus | null; position: number }>;
  /** `GET /api/v1/status` */
  hubStatus(): Promise<{ queue_length: number; connected_workers: number }>;
  /** A subscriber that keeps every frame (also after `error`, unlike the CLI). */
  watch(jobId: string): Promise<Watcher>;
  /** `POST /api/v1/jobs/:id/cancel` with a license key, an API token or the admin secret. */
  cancel(jobId: string, auth: CancelAuth): Promise<{ status: number; body: unknown }>;
  /** `perry publish` against this hub, with short test defaults. */
  publish(targets: string[], options?: Partial<PublishOptions>): Publishing;
}

export type CancelAuth = { licenseKey: string } | { apiToken: string } | { admin: true } | Record<string, never>;

export interface Publishing {
  /** Resolves once the hub accepted the build and the CLI subscribed (its first frame arrived). */
  readonly jobId: Promise<string>;
  readonly result: Promise<PublishResult>;
}

/** Runs `body` against a fresh hub; every worker, watcher and the hub are stopped afterwards. */
export async function withHub(
  input: ServiceEnvInput,
  extra: Record<string, string>,
  body: (s: Scenario) => Promise<void>,
  options: TestHubOptions = {},
): Promise<void> {
  const hub = await startTestHub(input, extra, options);
  const workers: SimulatedWorker[] = [];
  const watchers: Watcher[] = [];
  let nc: Promise<NatsConnection> | undefined;
  const history = new WorkerHistory();
  let published = 0;
  const spawn = (kind: WorkerKind, options: Partial<WorkerOptions> = {}) => {
    const w = WORKERS[kind]({ url: hub.workerUrl, secret: WORKER_SECRET, history, reconnectDelayMs: 200, ...options });
    workers.push(w);
    return w;
  };
  const hubStatus = async () =>
    (await (await fetch(`${hub.url}/api/v1/status`)).json()) as { queue_length: number; connected_workers: number };
  const adminWorkers = async () => {
    const res = await fetch(`${hub.url}/api/v1/admin/workers`, {
      headers: { authorization: `Bearer ${ADMIN_SECRET}` },
    });
    return ((await res.json()) as { workers: { name: string }[] }).workers;
  };
  const scenario: Scenario = {
    hub,
    history,
    spawn,
    hubStatus,
    worker: async (kind, options) => {
      const named = async (name: string) => (await adminWorkers()).filter((w) => w.name === name).length;
      const before = options?.name === undefined ? 0 : await named(options.name);
      const w = spawn(kind, options);
      await w.connected();
      await until(`${w.name} registered`, async () => (await named(w.name)) > before);
      return w;
    },
    status: async (jobId) => {
      nc ??= connectTestNats(input.natsUrl);
      const reply = await call(await nc, subjects(input.prefix), jobStatusEndpoint, { jobId });
      return { status: reply.status, position: reply.position };
    },
    cancel: async (jobId, auth) => {
      const bearer = 'admin' in auth ? ADMIN_SECRET : 'apiToken' in auth ? auth.apiToken : undefined;
      const res = await fetch(`${hub.url}/api/v1/jobs/${jobId}/cancel`, {
        method: 'POST',
        headers: {
          ...(bearer !== undefined ? { authorization: `Bearer ${bearer}` } : {}),
          ...('licenseKey' in auth ? { 'content-type': 'application/json' } : {}),
        },
        ...('licenseKey' in auth ? { body: JSON.stringify({ license_key: auth.licenseKey }) } : {}),
      });
      return { status: res.status, body: await res.json() };
    },
    watch: async (jobId) => {
      const w = await Watcher.open(`${hub.url.replace('http://', 'ws://')}/ws`, jobId);
      watchers.push(w);
      return w;
    },
    publish: (targets, options = {}) => {
      let resolveId!: (id: string) => void;
      let rejectId!: (err: Error) => void;
      const jobId = new Promise<string>((resolve, reject) => ((resolveId = resolve), (rejectId = reject)));
      const result = perryPublish({
        server: hub.url,
        manifest: { ...MANIFEST, targets },
        credentials: CREDENTIALS,
        // Each publish its own source: identical submissions would be one build (a retry).
        tarball: tarball(`${targets.join('+')} #${++published}`),
        timeoutMs: 30_000,
        reconnectDelayMs: () => 200,
        ...options,
        onMessage: (message, raw) => {
          if (message.type === 'job_created') resolveId(message.job_id);
          options.onMessage?.(message, raw);
        },
      });
      // A build refused over HTTP never subscribes: let `jobId` fail instead of hanging.
      void result.then((r) => (r.jobId ? resolveId(r.jobId) : rejectId(new Error(`not accepted: ${r.reason}`))));
      return { jobId, result };
    },
  };
  try {
    await body(scenario);
  } finally {
    for (const w of watchers) w.close();
    for (const w of workers) await w.stop();
    await (await nc)?.close();
    await hub.stop();
  }
}

/** A WebSocket client that subscribes to one job and records every frame. */
export class Watcher {
  readonly frames: string[] = [];
  readonly #ws: WebSocket;

  private constructor(ws: WebSocket) {
    this.#ws = ws;
    ws.on('message', (data: Buffer) => this.frames.push(data.toString('utf8')));
    ws.on('error', () => undefined);
  }

  static async open(url: string, jobId: string): Promise<Watcher> {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    const watcher = new Watcher(ws);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    watcher.send({ type: 'subscribe', job_id: jobId });
    return watcher;
  }

  send(message: object): void {
    this.#ws.send(JSON.stringify(message));
  }

  parsed(): Record<string, unknown>[] {
    return this.frames.map((f) => JSON.parse(f) as Record<string, unknown>);
  }

  /** The first frame received that satisfies `match`. */
  async next(
    what: string,
    match: (m: Record<string, unknown>) => boolean,
    timeoutMs = 15_000,
  ): Promise<Record<string, unknown>> {
    return until(what, () => this.parsed().find(match), timeoutMs);
  }

  close(): void {
    this.#ws.terminate();
  }
}

export const ofType = (type: string) => (m: { type?: unknown }) => m.type === type;
