/**
 * The artifact-store owns tarballs and artifacts: bytes in a JetStream Object Store bucket,
 * digests, one-time download tokens and expiry. On the tarball side it reconciles the bucket with
 * the job records in MySQL, removing what interrupted intakes left behind.
 */
import { jetstreamManager } from '@nats-io/jetstream';
import { JobDone, topologyNames } from '@perry-hub/contracts';
import type { Pool } from '@perry-hub/db';
import { jetstream } from '@nats-io/jetstream';
import { BlobStore, decode, defineService } from '@perry-hub/runtime';
import { announcedMarks, artifactEndpoints, expireArtifacts, jobEnded } from './artifacts.js';
import { attemptEndpoints } from './attempts.js';
import { verifyEndpoints } from './verify.js';
import { ArtifactStoreConfig } from './config.js';
import { startSweeper } from './sweep.js';

export { ArtifactStoreConfig } from './config.js';
export { sweepOrphans } from './sweep.js';
export { expireArtifacts } from './artifacts.js';

export const artifactStore = defineService({
  name: 'artifact-store',
  config: ArtifactStoreConfig,
  needsDb: true,
  start: async (deps, config) => {
    const blobs = await BlobStore.open(deps.nc, topologyNames(config.subjectPrefix).blobsBucket);
    const sweeper = startSweeper(
      { db: deps.db as Pool, blobs, jsm: await jetstreamManager(deps.nc), log: deps.log },
      { intervalMs: config.sweepIntervalSecs * 1000, graceMs: config.orphanGraceMins * 60_000 },
    );
    const artifacts = {
      db: deps.db as Pool,
      blobs,
      js: jetstream(deps.nc),
      subjects: deps.subjects,
      eventsStream: topologyNames(config.subjectPrefix).eventsStream,
      log: deps.log,
      publicUrl: config.publicUrl,
      artifactTtlSecs: config.artifactTtlSecs,
      announced: announcedMarks(deps.db as Pool, (err) =>
        deps.log.warn({ err }, 'announced marks not recorded yet; trying again'),
      ),
    };
    deps.serve([...artifactEndpoints(artifacts), ...verifyEndpoints(artifacts), ...attemptEndpoints(artifacts)]);
    // Each job's outcome, as the scheduler publishes it (to one instance of the group): its input
    // goes. Missed while no instance listens, an input stays until the job's record is gone.
    const outcomes = deps.nc.subscribe(deps.subjects.jobDoneAll, {
      queue: 'artifact-store',
      callback: (err, msg) => {
        if (err) return deps.log.warn({ err }, 'job outcome subscription failed');
        let jobId: string;
        try {
          jobId = decode(JobDone, msg.json(), 'job outcome').jobId;
        } catch {
          return; // not an outcome: nothing to remove
        }
        void jobEnded(artifacts, jobId);
      },
    });
    // Download links expire after PERRY_HUB_ARTIFACT_TTL_SECS; their bytes go at the next pass.
    const expiry = setInterval(() => {
      expireArtifacts(artifacts).catch((err: unknown) => deps.log.warn({ err }, 'artifact expiry failed'));
    }, 60_000);
    return {
      stop: async () => {
        outcomes.unsubscribe();
        clearInterval(expiry);
        await sweeper.stop();
        await artifacts.announced
          .flush()
          .catch((err: unknown) => deps.log.warn({ err }, 'announced marks not recorded'));
      },
    };
  },
});
