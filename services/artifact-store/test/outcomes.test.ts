// A job's outcome on the bus, as the scheduler publishes it, removes the job's input tarball.
import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { describe, expect } from 'vitest';
import { subjects, type JobDone } from '@perry-hub/contracts';
import { test, until } from '@perry-hub/testkit';
import { startArtifactStore } from './support.js';

describe('job outcomes', () => {
  test("a job's outcome removes its input tarball, and nothing else", async ({ natsUrl, prefix, database }) => {
    const { nc, blobs, close } = await startArtifactStore({ natsUrl, prefix, database });
    try {
      const [ended, running] = [randomUUID(), randomUUID()];
      for (const jobId of [ended, running]) await blobs.put(`tarballs/${jobId}`, Readable.from([Buffer.from('tgz')]));
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
    } finally {
      await close();
    }
  });
});
