/**
 * When a download token is spent. The transfer, not its start, spends it: a download cut by a
 * crash or a dropped connection can be fetched again. It is spent just before its last chunk is
 * written, so a client that received every byte finds the token spent on its very next request
 * (one-time semantics as before), while one cut earlier does not.
 */
import { Transform } from 'node:stream';

/** Passes chunks through, holding the last back until `spend()` settled. */
export function spendBeforeLastChunk(spend: () => Promise<void>): Transform {
  let held: Buffer | undefined;
  return new Transform({
    transform(chunk: Buffer, _encoding, done) {
      if (held !== undefined) this.push(held);
      held = chunk;
      done();
    },
    flush(done) {
      // A failure to record it must not cost the client its last bytes: it is logged by `spend`.
      void spend()
        .catch(() => undefined)
        .then(() => done(null, held));
    },
  });
}
