/**
 * Request/reply over NATS with the contracts' endpoint specs. Endpoints are NATS micro services
 * (discoverable with `$SRV.PING`/`INFO`/`STATS`), served in a queue group per service so any
 * number of instances share the load.
 */
import type { NatsConnection } from '@nats-io/nats-core';
import { Svcm, type Service, type ServiceMsg } from '@nats-io/services';
import {
  HubError,
  RpcReply,
  isErrorCode,
  type EndpointSpec,
  type RequestOf,
  type ResponseOf,
  type Subjects,
} from '@perry-hub/contracts';
import type { Static, TSchema } from 'typebox';
import type { Logger } from 'pino';
import { decode } from './validate.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export interface BoundEndpoint {
  readonly spec: EndpointSpec;
  readonly handler: (request: unknown) => Promise<unknown>;
}

/** Pair an endpoint spec with its handler, keeping request and response types tied. */
export function handle<E extends EndpointSpec>(
  spec: E,
  handler: (request: RequestOf<E>) => Promise<ResponseOf<E>> | ResponseOf<E>,
): BoundEndpoint {
  return { spec, handler: async (request) => handler(request as RequestOf<E>) };
}

/** The bus's one error envelope: a HubError as it is, anything else logged and hidden. */
export function errorReply(err: unknown, log: Logger, what: string): RpcReply {
  if (err instanceof HubError) {
    return {
      ok: false,
      error: {
        code: err.code,
        message: err.message,
        retry: err.retry,
        ...(err.details ? { details: err.details } : {}),
      },
    };
  }
  if (isDatabaseUnreachable(err)) {
    log.warn({ err, endpoint: what }, 'request failed: MySQL unreachable');
    return {
      ok: false,
      error: { code: 'SERVICE_UNAVAILABLE', message: 'The hub cannot reach its database; try again', retry: 'retry' },
    };
  }
  log.error({ err, endpoint: what }, 'request failed');
  return { ok: false, error: { code: 'INTERNAL_ERROR', message: 'Internal error' } };
}

/** MySQL down or restarting: a passing condition for the caller to retry, not a fault of the hub's code. */
const UNREACHABLE = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'PROTOCOL_CONNECTION_LOST',
  'PROTOCOL_SEQUENCE_TIMEOUT',
  'ER_SERVER_SHUTDOWN',
  'ER_CON_COUNT_ERROR',
]);

function isDatabaseUnreachable(err: unknown): boolean {
  const e = err as { code?: unknown; sqlState?: unknown; fatal?: unknown } | undefined;
  return typeof e?.code === 'string' && UNREACHABLE.has(e.code);
}

/** What `respond` needs of a message: a core NATS `Msg` and a micro-service `ServiceMsg` both fit. */
export interface Respondable {
  readonly data: Uint8Array;
  readonly reply?: string | undefined;
  respond(data: Uint8Array): boolean;
}

/**
 * The bus's one respond path: parse the JSON request (an empty body is `{}`), run it, and answer
 * `{"ok":true,"result"}` or the error envelope. A request without a reply subject gets none.
 */
export async function respond(
  msg: Respondable,
  run: (body: unknown) => Promise<unknown>,
  log: Logger,
  what: string,
): Promise<void> {
  let reply: RpcReply;
  try {
    const body: unknown = msg.data.length === 0 ? {} : JSON.parse(decoder.decode(msg.data));
    reply = { ok: true, result: await run(body) };
  } catch (e) {
    reply = errorReply(e instanceof SyntaxError ? new HubError('BAD_REQUEST', 'Request is not JSON') : e, log, what);
  }
  if (msg.reply) msg.respond(encoder.encode(JSON.stringify(reply)));
}

export interface ServeOptions {
  nc: NatsConnection;
  subjects: Subjects;
  service: EndpointSpec['service'];
  version: string;
  log: Logger;
}

export async function serveEndpoints(options: ServeOptions, endpoints: readonly BoundEndpoint[]): Promise<Service> {
  const { nc, subjects, service, log } = options;
  // @nats-io/services pins an older @nats-io/nats-core; the connection is compatible at run time.
  const svc = await new Svcm(nc as unknown as ConstructorParameters<typeof Svcm>[0]).add({
    name: `perry-hub-${service}`,
    version: options.version,
    description: `Perry Hub ${service}`,
    metadata: { prefix: subjects.prefix },
  });
  const group = svc.addGroup(subjects.serviceGroup(service), `${subjects.prefix}.${service}`);
  for (const { spec, handler } of endpoints) {
    if (spec.service !== service) throw new TypeError(`${spec.name} belongs to ${spec.service}, not ${service}`);
    group.addEndpoint(spec.name, {
      handler: (err: Error | null, msg: ServiceMsg) => {
        if (err) {
          log.error({ err, endpoint: spec.name }, 'endpoint subscription failed');
          return;
        }
        void respond(msg, async (body) => handler(decode(spec.request, body, `${spec.name} request`)), log, spec.name);
      },
    });
  }
  return svc;
}

export interface CallOptions {
  timeoutMs?: number;
  /**
   * For requests that are safe to repeat: try this many times in all while the service is
   * unavailable or does not answer (an instance may have died mid-request while another serves).
   */
  attempts?: number;
  /**
   * For requests that are safe to repeat: keep trying for this long (and at least `attempts`
   * times), for a peer that is failing over rather than answering wrong.
   */
  forMs?: number;
}

/** Call an endpoint and return its validated result, or throw the HubError it answered with. */
export async function call<E extends EndpointSpec>(
  nc: NatsConnection,
  subjects: Subjects,
  spec: E,
  request: RequestOf<E>,
  options: CallOptions & {
    /** The request to send again after a failed attempt (e.g. marked as a retry for the handler). */
    again?: (request: RequestOf<E>) => RequestOf<E>;
  } = {},
): Promise<ResponseOf<E>> {
  const attempts = Math.max(1, options.attempts ?? 1);
  const deadline = Date.now() + (options.forMs ?? 0);
  for (let attempt = 1; ; attempt++) {
    try {
      const sent = attempt > 1 && options.again ? options.again(request) : request;
      return await callOnce(nc, subjects, spec, sent, options.timeoutMs ?? spec.timeoutMs);
    } catch (err) {
      const delayMs = Math.min(100 * attempt, 1_000);
      const more = attempt < attempts || Date.now() + delayMs < deadline;
      if (!more || !(err instanceof HubError) || err.retry !== 'retry') throw err;
      await new Promise((resolve) => setTimeout(resolve, delayMs));
    }
  }
}

function callOnce<E extends EndpointSpec>(
  nc: NatsConnection,
  subjects: Subjects,
  spec: E,
  request: RequestOf<E>,
  timeoutMs: number,
): Promise<ResponseOf<E>> {
  return requestReply(nc, subjects.endpoint(spec.service, spec.name), request, spec.response, {
    timeoutMs,
    what: spec.name,
    who: `The ${spec.service} service`,
  }) as Promise<ResponseOf<E>>;
}

export interface RequestOptions {
  timeoutMs: number;
  /** Names the request in errors (`account-get`, `worker command`). */
  what: string;
  /** Names the responder in errors (`The license service`). */
  who: string;
}

/**
 * The bus's one request path: send JSON, decode the RpcReply envelope, validate the result
 * against `response`, or throw the HubError the responder answered with. No responders is
 * SERVICE_UNAVAILABLE, silence UPSTREAM_TIMEOUT (both retryable).
 */
export async function requestReply<R extends TSchema>(
  nc: NatsConnection,
  subject: string,
  request: unknown,
  response: R,
  options: RequestOptions,
): Promise<Static<R>> {
  let data: Uint8Array;
  try {
    const msg = await nc.request(subject, encoder.encode(JSON.stringify(request)), { timeout: options.timeoutMs });
    data = msg.data;
  } catch (err) {
    const text = String((err as Error)?.message ?? err);
    if (/no responders/i.test(text) || (err as { code?: string }).code === '503') {
      throw new HubError('SERVICE_UNAVAILABLE', `${options.who} is not running`, { cause: err });
    }
    throw new HubError('UPSTREAM_TIMEOUT', `${options.who} did not answer ${options.what} in time`, { cause: err });
  }
  const reply = decode(RpcReply, JSON.parse(decoder.decode(data)), `${options.what} reply`, 'INTERNAL_ERROR');
  if (!reply.ok) {
    const { code, message, retry, details } = reply.error;
    throw new HubError(isErrorCode(code) ? code : 'INTERNAL_ERROR', message, {
      ...(retry ? { retry } : {}),
      ...(details ? { details } : {}),
    });
  }
  return decode(response, reply.result, `${options.what} result`, 'INTERNAL_ERROR');
}
