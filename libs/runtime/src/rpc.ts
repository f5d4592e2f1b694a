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

function errorReply(err: unknown, log: Logger, endpoint: string): RpcReply {
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
  log.error({ err, endpoint }, 'endpoint failed');
  return { ok: false, error: { code: 'INTERNAL_ERROR', message: 'Internal error' } };
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
        void (async () => {
          let reply: RpcReply;
          try {
            const body: unknown = msg.data.length === 0 ? {} : JSON.parse(decoder.decode(msg.data));
            const request = decode(spec.request, body, `${spec.name} request`);
            reply = { ok: true, result: await handler(request) };
          } catch (e) {
            reply = errorReply(
              e instanceof SyntaxError ? new HubError('BAD_REQUEST', 'Request is not JSON') : e,
              log,
              spec.name,
            );
          }
          msg.respond(encoder.encode(JSON.stringify(reply)));
        })();
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
}

/** Call an endpoint and return its validated result, or throw the HubError it answered with. */
export async function call<E extends EndpointSpec>(
  nc: NatsConnection,
  subjects: Subjects,
  spec: E,
  request: RequestOf<E>,
  options: CallOptions = {},
): Promise<ResponseOf<E>> {
  const attempts = Math.max(1, options.attempts ?? 1);
  for (let attempt = 1; ; attempt++) {
    try {
      return await callOnce(nc, subjects, spec, request, options.timeoutMs ?? spec.timeoutMs);
    } catch (err) {
      if (attempt >= attempts || !(err instanceof HubError) || err.retry !== 'retry') throw err;
      await new Promise((resolve) => setTimeout(resolve, 100 * attempt));
    }
  }
}

async function callOnce<E extends EndpointSpec>(
  nc: NatsConnection,
  subjects: Subjects,
  spec: E,
  request: RequestOf<E>,
  timeoutMs: number,
): Promise<ResponseOf<E>> {
  const subject = subjects.endpoint(spec.service, spec.name);
  let data: Uint8Array;
  try {
    const msg = await nc.request(subject, encoder.encode(JSON.stringify(request)), { timeout: timeoutMs });
    data = msg.data;
  } catch (err) {
    const text = String((err as Error)?.message ?? err);
    if (/no responders/i.test(text) || (err as { code?: string }).code === '503') {
      throw new HubError('SERVICE_UNAVAILABLE', `The ${spec.service} service is not running`, { cause: err });
    }
    throw new HubError('UPSTREAM_TIMEOUT', `The ${spec.service} service did not answer ${spec.name} in time`, {
      cause: err,
    });
  }
  const reply = decode(RpcReply, JSON.parse(decoder.decode(data)), `${spec.name} reply`, 'INTERNAL_ERROR');
  if (!reply.ok) {
    const { code, message, retry, details } = reply.error;
    throw new HubError(isErrorCode(code) ? code : 'INTERNAL_ERROR', message, {
      ...(retry ? { retry } : {}),
      ...(details ? { details } : {}),
    });
  }
  return decode(spec.response, reply.result, `${spec.name} result`, 'INTERNAL_ERROR') as ResponseOf<E>;
}
