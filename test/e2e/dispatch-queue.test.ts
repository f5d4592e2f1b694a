// Queue order end to end, through the HTTP API as the CLI submits: pro before free, one build at
// a time per free license, and a job nobody can take never holds up the others.
import { describe, expect } from 'vitest';
import { subjects } from '@perry-hub/contracts';
import { connectTestNats, test } from '@perry-hub/testkit';
import { expectedArtifact } from '../support/rust-worker-jobs.js';
import type { SimulatedWorker } from '../support/rust-workers.js';
import { tarball } from '../support/test-hub.js';
import { ofType, until, withHub, type Scenario } from './dispatch-kit.js';

/** Cancel as the admin and wait for the job's last message at a subscribed client. */
async function cancel(s: Scenario, jobId: string): Promise<void> {
  const client = await s.watch(jobId);
  await client.next('job_created', ofType('job_created'));
  expect(await s.cancel(jobId, { admin: true })).toEqual({ status: 200, body: { job_id: jobId, cancelled: true } });
  await client.next('complete', ofType('complete'));
}

describe('queue order end to end', () => {
  test('pro before free, and a free license builds one at a time even with a worker free', async ({
    natsUrl,
    prefix,
    database,
  }) => {
    await withHub({ natsUrl, prefix, database }, {}, async (s) => {
      // Every build runs until the test lets it go (the worker then fails it, freeing its slot).
      const hold = { script: () => ({ hang: true }), maxConcurrent: 1 };
      const first = await s.worker('linux', { name: 'linux-1', ...hold });
      const workers: SimulatedWorker[] = [first];
      const started = () => s.history.started.map((h) => h.jobId);
      // Submissions are answered with the place the scheduler's leader sent when it queued each
      // job: none asks for it.
      const tap = await connectTestNats(natsUrl);
      let asked = 0;
      tap.subscribe(subjects(prefix).endpoint('scheduler', 'queue-position'), {
        callback: () => {
          asked++;
        },
      });
      await tap.flush();
      const waitStarted = (jobId: string, what: string) => until(`${what} to start`, () => started().includes(jobId));
      const release = async (jobId: string) => {
        workers
          .find((w) => w.jobs.has(jobId))!
          .jobs.get(jobId)!
          .cancel();
        await until(`${jobId} to end`, async () => (await s.status(jobId)).status === 'failed');
      };

      const [proA, proB, free, otherFree] = [
        await s.hub.account('pro'),
        await s.hub.account('pro'),
        await s.hub.registerLicense(),
        await s.hub.registerLicense(),
      ];
      const runs = [];
      const busy = s.publish(['linux'], { apiToken: proA });
      runs.push(busy);
      const B = await busy.jobId;
      await waitStarted(B, 'the long build');

      // Queued in this order while the only slot is busy: free, free (same license and project), pro.
      const f1 = s.publish(['linux'], { licenseKey: free });
      runs.push(f1);
      const F1 = await f1.jobId;
      const f2 = s.publish(['linux'], { licenseKey: free });
      runs.push(f2);
      const F2 = await f2.jobId;
      const p = s.publish(['linux'], { apiToken: proB });
      runs.push(p);
      const P = await p.jobId;
      expect(await s.status(P)).toEqual({ status: 'queued', position: 1 });
      expect(await s.status(F1)).toEqual({ status: 'queued', position: 2 });
      expect(await s.status(F2)).toEqual({ status: 'queued', position: 3 });

      await release(B);
      await waitStarted(P, 'the pro build');
      expect(started()).toEqual([B, P]);

      await release(P);
      await waitStarted(F1, 'the first free build');
      expect(started()).toEqual([B, P, F1]);

      // A second worker with a free slot: the license's second build still waits for its first,
      // while another license's build, queued after it, goes ahead.
      workers.push(await s.worker('linux', { name: 'linux-2', ...hold }));
      const g = s.publish(['linux'], { licenseKey: otherFree });
      runs.push(g);
      const G = await g.jobId;
      await waitStarted(G, "another license's build");
      expect(started()).toEqual([B, P, F1, G]);
      expect(s.history.started.at(-1)?.worker).toBe('linux-2');
      expect(await s.status(F2)).toEqual({ status: 'queued', position: 1 });

      await release(F1);
      await waitStarted(F2, 'the second free build');
      expect(started()).toEqual([B, P, F1, G, F2]);
      expect(s.history.started.at(-1)?.worker).toBe('linux-1');

      await release(G);
      await release(F2);
      for (const run of runs) expect((await run.result).reason).toBe('Build error [INTERNAL_ERROR]: Build cancelled');
      // The places at submission: each free build behind the one before, the pro one first.
      expect([(await f1.result).position, (await f2.result).position, (await p.result).position]).toEqual([1, 2, 1]);
      await tap.flush();
      expect(asked).toBe(0);
      await tap.close();
    });
  });

  test('a job nobody can take (visionos) does not hold up a later Linux job', async ({ natsUrl, prefix, database }) => {
    await withHub({ natsUrl, prefix, database }, {}, async (s) => {
      await s.worker('linux', { name: 'kamatera-fra' });
      await s.worker('macos', { name: 'oakhost-tart' });
      const apiToken = await s.hub.account('pro');
      const stuck = s.publish(['visionos'], { apiToken });
      const V = await stuck.jobId;
      expect(await s.status(V)).toEqual({ status: 'queued', position: 1 });

      const input = tarball('after visionos');
      const linux = await s.publish(['linux'], { apiToken, tarball: input }).result;
      expect(linux.reason).toBe('Ready');
      expect(linux.artifact?.bytes).toEqual(expectedArtifact('linux', 'linux', input));
      expect(s.history.started.map((h) => h.jobId)).toEqual([linux.jobId]);
      expect(await s.status(V)).toEqual({ status: 'queued', position: 1 });
      expect((await s.hubStatus()).queue_length).toBe(1);

      await cancel(s, V);
      expect((await stuck.result).reason).toBe('Build error [INTERNAL_ERROR]: Build cancelled');
    });
  });
});
