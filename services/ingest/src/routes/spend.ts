/**
 * When a download token is spent. The transfer, not its start, spends it, in two steps around
 * its last byte (finish-download): once every byte before the last has left the process (handed
 * to the kernel, which delivers it even if the process then dies), the token is marked as at its
 * last byte, then the last byte is written, and once that too has left the process the token is
 * spent. A client that received every byte finds the token spent on its very next request (that
 * request waits for the second step); a transfer cut before the second step, even by a kill -9,
 * leaves the token usable: at worst a client that got everything may fetch it once more, never
 * is one that missed a byte refused.
 */
import { Transform } from 'node:stream';

const POLL_MS = 5;

/**
 * Passes chunks through, holding the last byte back until everything before it was flushed
 * (`flushed()`: nothing left queued downstream in the process) and `atLastByte()` settled.
 */
export function holdLastByte(atLastByte: () => Promise<void>, flushed: () => boolean): Transform {
  let held: Buffer | undefined;
  // A failure to record it must not cost the client its last byte: it is logged by the caller.
  const settle = (done: (err: null, last?: Buffer) => void, last: Buffer | undefined) =>
    void atLastByte()
      .catch(() => undefined)
      .then(() => done(null, last));
  return new Transform({
    transform(chunk: Buffer, _encoding, done) {
      if (held !== undefined) this.push(held);
      held = chunk;
      done();
    },
    flush(done) {
      if (held === undefined || held.length === 0) return settle(done, held);
      this.push(held.subarray(0, held.length - 1));
      const last = held.subarray(held.length - 1);
      const wait = () => {
        if (this.destroyed) return;
        if (this.readableLength > 0 || !flushed()) {
          setTimeout(wait, POLL_MS).unref();
          return;
        }
        settle(done, last);
      };
      wait();
    },
  });
}
