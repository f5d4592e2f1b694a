/**
 * When a download token is spent. The transfer, not its start, spends it: a download cut by a
 * crash or a dropped connection can be fetched again. It is spent just before its last byte is
 * written, once every byte before it has left the process (handed to the kernel, which delivers
 * it even if the process then dies): a client that received every byte finds the token spent on
 * its very next request (one-time semantics as before), while one cut earlier, even by a kill -9
 * with megabytes still queued in the process, does not.
 */
import { Transform } from 'node:stream';

const POLL_MS = 5;

/**
 * Passes chunks through, holding the last byte back until everything before it was flushed
 * (`flushed()`: nothing left queued downstream in the process) and `spend()` settled.
 */
export function spendBeforeLastChunk(spend: () => Promise<void>, flushed: () => boolean): Transform {
  let held: Buffer | undefined;
  return new Transform({
    transform(chunk: Buffer, _encoding, done) {
      if (held !== undefined) this.push(held);
      held = chunk;
      done();
    },
    flush(done) {
      if (held === undefined || held.length === 0) {
        void spend()
          .catch(() => undefined)
          .then(() => done(null, held));
        return;
      }
      this.push(held.subarray(0, held.length - 1));
      const last = held.subarray(held.length - 1);
      const wait = () => {
        if (this.destroyed) return;
        if (this.readableLength > 0 || !flushed()) {
          setTimeout(wait, POLL_MS).unref();
          return;
        }
        // A failure to record it must not cost the client its last byte: it is logged by `spend`.
        void spend()
          .catch(() => undefined)
          .then(() => done(null, last));
      };
      wait();
    },
  });
}
