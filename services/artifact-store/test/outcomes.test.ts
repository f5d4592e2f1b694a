// A job's outcome on the bus, as the scheduler publishes it, removes the job's input tarball.
import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { describe, expect } from 'vitest';
import { jetstreamManager } from '@nats-io/jetstream';
import { subjects, type JobDone } from '@perry-hub/contracts';
import { test, until } from '@perry-hub/testkit';
import { startArtifactStore } from './support.js';

describe('job outcomes', () => {
  test("a job's outcome removes its input tarball, and nothing else", async ({ natsUrl, prefix, database }) => {
    const { nc, blobs, close } = await startArtifactStore({ natsUrl, prefix, database });
    try {
      const [ended, running] = [randomUUID(), randomUUID()];
      // As the ingest stores them: under a fresh name.
      for (const jobId of [ended, running]) {
        await blobs.put(`tarballs/${jobId}`, Readable.from([Buffer.from('tgz')]), { fresh: true });
      }
      const done: JobDone = {
        jobId: ended,
        outcome: 'succeeded',
        licenseKey: 'k',
        tier: 'free',
        targets: ['linux'],
        attempt: 1,
        finishedAt: Date.now(),
      };
      nc.publish(subjects(prefix).jobDone(ended), JSON.stringify(done));
      nc.publish(subjects(prefix).jobDone(randomUUID()), 'not an outcome');
      await until('the ended job’s tarball removed', async () => (await blobs.info(`tarballs/${ended}`)) === null);
      expect(await blobs.info(`tarballs/${running}`)).not.toBeNull();
      // Its chunks went with it; only the running job's chunk and meta record are stored.
      const stream = await (await jetstreamManager(nc)).streams.info(blobs.streamName, { subjects_filter: '>' });
      expect(Object.keys(stream.state.subjects ?? {})).toHaveLength(2);
    } finally {
      await close();
    }
  });
});
