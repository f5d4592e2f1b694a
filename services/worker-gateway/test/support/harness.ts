/**
 * What the gateway's tests stand on: a real gateway on a real NATS (the test kit's), a fake
 * scheduler serving the two endpoints the gateway calls, raw WebSocket peers that record every
 * frame as text, and the bus as the scheduler sees it (commands, lifecycle, event log).
 */
import { pino, type Logger } from 'pino';
import { WebSocket } from 'ws';
import type { NatsConnection } from '@nats-io/nats-core';
import { jetstream, type JetStreamClient } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import {
  HUB_VERSION,
  EVENT_BATCH_HEADER,
  cancelJobEndpoint,
  jobStatusEndpoint,
  splitEvents,
  subjects as makeSubjects,
  topologyFor,
  topologyNames,
  workerEventEndpoint,
  type Ack,
  type JobStatusReply,
  type RpcReply,
  type Subjects,
  type WorkerCommand,
  type WorkerEvent,
} from '@perry-hub/contracts';
import {
  ensureTopology,
  handle,
  launchService,
  loadConfig,
  serveEndpoints,
  type LaunchedService,
} from '@perry-hub/runtime';
import { workerGateway } from '../../src/index.js';
import { connectTestNats, until, serviceEnv } from '@perry-hub/testkit';

export const log = pino({ level: process.env['TEST_LOG_LEVEL'] ?? 'silent' });
const encoder = new TextEncoder();
const decoder = new TextDecoder();

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export { until };

export interface Gateway {
  readonly service: LaunchedService;
  readonly port: number;
  readonly url: string;
}

/** A logger that keeps every line it writes (JSON), for tests that count what was logged. */
export function memoryLog(level = 'info'): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  return { log: pino({ level }, { write: (line: string) => void lines.push(line) }), lines };
}

export async function startGateway(
  natsUrl: string,
  prefix: string,
  env: Record<string, string> = {},
  logger: Logger = log,
): Promise<Gateway> {
  const config = loadConfig(workerGateway.config, {
    ...serviceEnv({ natsUrl, prefix }),
    PERRY_HUB_WS_PORT: '0',
    PERRY_HUB_WS_HOST: '127.0.0.1',
    ...env,
  });
  const service = await launchService(workerGateway, config, logger);
  const port = service.info['wsPort'] as number;
  return { service, port, url: `ws://127.0.0.1:${port}` };
}

export interface GatewayOptions {
  /** Variables over the gateway's test defaults. */
  readonly env?: Record<string, string>;
  /** False: no fake scheduler answers (see `openBus`). */
  readonly scheduler?: boolean;
  readonly logger?: Logger;
}

/**
 * The bus as the scheduler sees it and a gateway started on it, for `body`; afterwards the
 * gateway is stopped, then the bus closed, whatever `body` did.
 */
export async function withGateway<T>(
  natsUrl: string,
  prefix: string,
  options: GatewayOptions,
  body: (setup: { bus: Bus; gw: Gateway }) => Promise<T>,
): Promise<T> {
  const bus = await openBus(natsUrl, prefix, options.scheduler === undefined ? {} : { scheduler: options.scheduler });
  try {
    const gw = await startGateway(natsUrl, prefix, options.env, options.logger);
    try {
      return await body({ bus, gw });
    } finally {
      await gw.service.stop();
    }
  } finally {
    await bus.close();
  }
}

/** A WebSocket peer that keeps every frame it received, as text, in order. */
export class Peer {
  readonly frames: string[] = [];
  readonly ws: WebSocket;
  readonly opened: Promise<void>;
  readonly closed: Promise<{ code: number; reason: string }>;
  closeCode: number | undefined;

  constructor(url: string, options: ConstructorParameters<typeof WebSocket>[2] = {}) {
    this.ws = new WebSocket(url, options);
    this.ws.on('message', (data: Buffer) => this.frames.push(data.toString('utf8')));
    this.ws.on('error', () => undefined);
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', () => resolve());
      this.ws.once('error', reject);
    });
    this.closed = new Promise((resolve) =>
      this.ws.once('close', (code: number, reason: Buffer) => {
        this.closeCode = code;
        resolve({ code, reason: reason.toString() });
      }),
    );
  }

  static async open(url: string, options: ConstructorParameters<typeof WebSocket>[2] = {}): Promise<Peer> {
    const peer = new Peer(url, options);
    await peer.opened;
    return peer;
  }

  send(message: unknown): void {
    this.ws.send(typeof message === 'string' ? message : JSON.stringify(message));
  }

  /** Wait until `count` frames have arrived; returns them all. */
  async frameCount(count: number, timeoutMs = 10_000): Promise<string[]> {
    return until(
      `${count} frames (have ${this.frames.length})`,
      () => this.frames.length >= count && this.frames,
      timeoutMs,
    );
  }

  async frameMatching(pattern: RegExp, timeoutMs = 10_000): Promise<string> {
    return until(`a frame matching ${pattern}`, () => this.frames.find((f) => pattern.test(f)), timeoutMs);
  }

  close(): void {
    this.ws.close();
  }
}

export const LINUX_HELLO = {
  type: 'worker_hello',
  capabilities: ['linux', 'android', 'windows', 'ios', 'macos', 'tvos'],
  name: 'kamatera-fra',
  secret: 's3cr3t',
  perry_version: '0.5.14',
  max_concurrent: 2,
};

/** The scheduler's side of the bus, with endpoints the tests script. */
export interface Bus {
  readonly nc: NatsConnection;
  readonly js: JetStreamClient;
  readonly subjects: Subjects;
  readonly presence: KV;
  /** Every WorkerEvent the fake scheduler was handed, in arrival order. */
  readonly events: WorkerEvent[];
  /** Every message on `<p>.workers.<event>` (connected, lost, activity). */
  readonly lifecycle: { subject: string; value: Record<string, unknown> }[];
  /** Every cancel request the fake scheduler was sent. */
  readonly cancels: { jobId: string; by: string }[];
  /** Every job id the fake `job-status` was asked about, in order. */
  readonly statusAsked: string[];
  /** Jobs the fake `job-status` knows; unknown ids are not found. */
  readonly jobs: Map<string, Omit<JobStatusReply, 'found'>>;
  /** Answer for worker-event; default accepted. */
  workerEventReply: (event: WorkerEvent) => Ack | Promise<Ack>;
  command(workerId: string, command: WorkerCommand): Promise<RpcReply>;
  /** Append a payload to a job's event log, as the scheduler does. */
  append(jobId: string, payload: string): Promise<void>;
  /** Payloads of a job's event log, in order. */
  log(jobId: string): Promise<string[]>;
  /** Start serving the fake scheduler endpoints (tests of "scheduler away" start them late). */
  serveScheduler(): Promise<void>;
  close(): Promise<void>;
}

export async function openBus(natsUrl: string, prefix: string, options: { scheduler?: boolean } = {}): Promise<Bus> {
  const nc = await connectTestNats(natsUrl);
  await ensureTopology(nc, topologyFor(prefix, 'worker-gateway'));
  const subjects = makeSubjects(prefix);
  const js = jetstream(nc);
  const presence = await new Kvm(nc).open(topologyNames(prefix).presenceBucket);
  const stops: (() => Promise<unknown>)[] = [];
  const bus: Bus = {
    nc,
    js,
    subjects,
    presence,
    events: [],
    cancels: [],
    statusAsked: [],
    lifecycle: [],
    jobs: new Map(),
    workerEventReply: () => ({ accepted: true }),
    command: async (workerId, command) => {
      const msg = await nc.request(subjects.workerCommand(workerId), encoder.encode(JSON.stringify(command)), {
        timeout: 5_000,
      });
      return JSON.parse(decoder.decode(msg.data)) as RpcReply;
    },
    append: async (jobId, payload) => {
      await js.publish(subjects.jobEvents(jobId), encoder.encode(payload));
    },
    log: async (jobId) => {
      const consumer = await js.consumers.get(topologyNames(prefix).eventsStream, {
        filter_subjects: subjects.jobEvents(jobId),
      });
      const out: string[] = [];
      for (;;) {
        const m = await consumer.next({ expires: 1_000 });
        if (!m) break;
        for (const frame of splitEvents(m.data, m.headers?.get(EVENT_BATCH_HEADER))) out.push(decoder.decode(frame));
        if (m.info.pending === 0) break;
      }
      return out;
    },
    serveScheduler: async () => {
      const svc = await serveEndpoints({ nc, subjects, service: 'scheduler', version: HUB_VERSION, log }, [
        handle(jobStatusEndpoint, ({ jobId }) => {
          bus.statusAsked.push(jobId);
          const job = bus.jobs.get(jobId);
          return job ? { found: true, ...job } : { found: false, status: null, position: 0 };
        }),
        handle(cancelJobEndpoint, (request) => {
          bus.cancels.push(request);
          return { accepted: true };
        }),
        handle(workerEventEndpoint, async (event) => {
          bus.events.push(event);
          return bus.workerEventReply(event);
        }),
      ]);
      stops.push(() => svc.stop());
    },
    close: async () => {
      for (const stop of stops) await stop();
      await nc.close();
    },
  };
  nc.subscribe(`${prefix}.workers.*`, {
    callback: (_err, msg) =>
      void bus.lifecycle.push({
        subject: msg.subject,
        value: JSON.parse(decoder.decode(msg.data)) as Record<string, unknown>,
      }),
  });
  if (options.scheduler !== false) await bus.serveScheduler();
  return bus;
}

/** The worker id of the one connected worker named `name`, from presence. */
export async function workerIdOf(bus: Bus, name: string): Promise<string> {
  return until(`presence of ${name}`, async () => {
    for await (const key of await bus.presence.keys()) {
      const entry = await bus.presence.get(key);
      if (!entry || entry.operation !== 'PUT') continue;
      const value = entry.json<{ workerId?: string; name?: string }>();
      if (value.name === name && value.workerId) return value.workerId;
    }
    return undefined;
  });
}
