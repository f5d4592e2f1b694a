/**
 * Cuts request bodies that arrive slower than a minimum rate. Without it a client trickling a
 * byte every few seconds keeps its connection, its upload slot and its share of the budgets
 * for the whole request timeout. The rate is measured on the socket over a window, and a window
 * in which the hub itself was not reading (waiting on NATS, back-pressure) never counts against
 * the client.
 *
 * Cutting fails whatever consumes the body (the multipart parser and the JSON body reader
 * listen for errors on the request; the upload route takes `bodySignal`), so the route answers
 * 408 in the usual envelope and the connection is closed. If no answer follows, the socket is
 * destroyed.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { IncomingMessage } from 'node:http';
import { HubError } from '@perry-hub/contracts';

export interface BodyRateOptions {
  minBytesPerSec: number;
  windowMs: number;
}

const SAMPLES_PER_WINDOW = 4;
const ANSWER_GRACE_MS = 2_000;

const controllers = new WeakMap<IncomingMessage, AbortController>();

/** Aborted when the request's body is cut; for consumers that do not read the request itself. */
export function bodySignal(request: FastifyRequest): AbortSignal | undefined {
  return controllers.get(request.raw)?.signal;
}

function expectsBody(raw: IncomingMessage): boolean {
  const length = raw.headers['content-length'];
  return (length !== undefined && length !== '0') || raw.headers['transfer-encoding'] !== undefined;
}

export function guardBodyRate(app: FastifyInstance, options: BodyRateOptions): void {
  if (options.minBytesPerSec === 0) return;
  const minBytes = (options.minBytesPerSec * options.windowMs) / 1000;
  const sampleMs = Math.max(100, Math.floor(options.windowMs / SAMPLES_PER_WINDOW));

  app.addHook('onRequest', async (request, reply) => {
    const raw = request.raw;
    if (!expectsBody(raw) || raw.complete) return;
    const controller = new AbortController();
    controllers.set(raw, controller);
    const socket = raw.socket;
    let [windowStart, bytesAtStart, excused] = [Date.now(), socket.bytesRead, false];
    const stop = () => clearInterval(timer);
    const timer = setInterval(() => {
      if (raw.complete || raw.destroyed || reply.sent) return stop();
      // Not flowing, or data waiting in the buffer: the hub is the one not reading.
      if (raw.readableFlowing !== true || raw.readableLength > 0) excused = true;
      const now = Date.now();
      if (now - windowStart < options.windowMs) return;
      const received = socket.bytesRead - bytesAtStart;
      if (!excused && received < minBytes) {
        stop();
        cut(request, controller, received, now - windowStart, options);
        return;
      }
      [windowStart, bytesAtStart, excused] = [now, socket.bytesRead, false];
    }, sampleMs);
    timer.unref();
    raw.once('close', stop);
  });
}

function cut(
  request: FastifyRequest,
  controller: AbortController,
  received: number,
  elapsedMs: number,
  options: BodyRateOptions,
): void {
  const err = new HubError(
    'REQUEST_TIMEOUT',
    `Request body too slow: ${received} bytes in ${Math.round(elapsedMs / 1000)} s (at least ${options.minBytesPerSec} bytes/s)`,
  );
  request.log.info({ address: request.ip, received, elapsedMs, url: request.url }, 'slow request body cut');
  controller.abort(err);
  const raw = request.raw;
  if (raw.listenerCount('error') > 0) raw.emit('error', err);
  setTimeout(() => {
    if (!raw.socket.destroyed && !request.raw.complete) raw.socket.destroy();
  }, ANSWER_GRACE_MS).unref();
}
