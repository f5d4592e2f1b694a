import { RequestError, RequestOne } from '@nats-io/nats-core/internal';

/**
 * nats-core 3.4 ends every request it muxes by cancelling it, answered or not: `cancel()` with no
 * error rejects the request's promise with `new RequestError('cancelled')`. For an answered
 * request the promise is already settled, and for a timed-out one nothing awaits it any more, so
 * the error is never seen; but building it captures a stack, on every request of every hop,
 * whatever `noAsyncTraces` says (2% of the hub's CPU in a profile of the realistic flow). One
 * frozen error without frames, made once, serves instead. A cancel given its reason (a failed
 * publish, a closed connection) is left as it is. Idempotent; applies to every connection of the
 * process.
 */
export function cancelRequestsWithoutStacks(): void {
  const proto = RequestOne.prototype as RequestOne & { [PATCHED]?: true };
  if (proto[PATCHED]) return;
  const cancel = proto.cancel;
  proto.cancel = function (this: RequestOne, err?: Error): void {
    cancel.call(this, err ?? CANCELLED);
  };
  proto[PATCHED] = true;
}

const PATCHED = Symbol('perry-hub.cancelRequestsWithoutStacks');

const CANCELLED: RequestError = (() => {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return Object.freeze(new RequestError('cancelled'));
  } finally {
    Error.stackTraceLimit = limit;
  }
})();
