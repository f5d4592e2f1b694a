// The intake message of an accepted submission is not lost to JetStream being away for a moment
// (a stream leader election, a NATS node cut off from its cluster): the answer does not wait, the
// message is retried behind it and stored once. Nor to the ingest dying between recording the
// job and publishing it: a retried submission that gets the earlier job publishes it again.
import { describe, expect } from 'vitest';
import { jetstreamManager } from '@nats-io/jetstream';
import { pino } from 'pino';
import { subjects as makeSubjects, topologyFor, topologyNames } from '@perry-hub/contracts';
import { dbOptions, migrate, openPool, type Pool } from '@perry-hub/db';
import { ensureTopology } from '@perry-hub/runtime';
import { connectTestNats, test } from '@perry-hub/testkit';
import { insertJob, publishIntake, republishQueuedIntake, type NewJob } from '../src/jobs.js';

const job = (jobId: string): NewJob => ({
  jobId,
  licenseKey: 'PRO-TEST-0000-0000',
  tier: 'pro',
  priority: 10,
  accountId: null,
  manifestText: '{}',
  manifest: { app_name: 'MyApp', bundle_id: 'com.example.app', version: '1', entry: 'main.ts', targets: ['linux'] },
  sealedCredentials: Buffer.alloc(0),
  tarballRef: `tarballs/${jobId}`,
  idempotencyKey: undefined,
  via: 'http',
});

describe('publishIntake', () => {
  test(
    'stores the message once JetStream takes it, after answering',
    { timeout: 30_000 },
    async ({ natsUrl, prefix }) => {
      const nc = await connectTestNats(natsUrl);
      try {
        const deps = { nc, subjects: makeSubjects(prefix), log: pino({ level: 'silent' }), db: {} as Pool };
        // No intake stream yet: the publish finds no responder, as while JetStream is away.
        await publishIntake(deps, job('job-a'), Date.now());
        await new Promise((resolve) => setTimeout(resolve, 1_000));
        await ensureTopology(nc, topologyFor(prefix, 'ingest'));
        const jsm = await jetstreamManager(nc);
        const stream = topologyNames(prefix).intakeStream;
        await expect.poll(async () => (await jsm.streams.info(stream)).state.messages, { timeout: 20_000 }).toBe(1);
        await publishIntake(deps, job('job-a'), Date.now());
        await new Promise((resolve) => setTimeout(resolve, 500));
        expect((await jsm.streams.info(stream)).state.messages).toBe(1);
      } finally {
        await nc.close();
      }
    },
  );

  test(
    'a job recorded without its intake message gets it from a retried submission, once, and only while it waits',
    { timeout: 30_000 },
    async ({ natsUrl, prefix, database }) => {
      const nc = await connectTestNats(natsUrl);
      const db = openPool(dbOptions(database, 2));
      try {
        await migrate(db);
        await ensureTopology(nc, topologyFor(prefix, 'ingest'));
        const deps = { nc, subjects: makeSubjects(prefix), log: pino({ level: 'silent' }), db };
        const stream = topologyNames(prefix).intakeStream;
        const jsm = await jetstreamManager(nc);
        const messages = async () => (await jsm.streams.info(stream)).state.messages;
        // Recorded, then its ingest died: no intake message.
        const waiting = { ...job('6f9d1c2e-4b3a-4e5f-8a7b-1c2d3e4f5a6b'), callbackUrl: 'https://example.com/hook' };
        await insertJob(db, waiting, 1_700_000_000_000);
        expect(await messages()).toBe(0);

        await republishQueuedIntake(deps, waiting.jobId, 'nats');
        expect(await messages()).toBe(1);
        const stored = await jsm.streams.getMessage(stream, { last_by_subj: deps.subjects.intake(waiting.jobId) });
        // Without the tarball's name: the scheduler reads the row as recorded.
        expect(stored!.json()).toEqual({
          jobId: waiting.jobId,
          licenseKey: 'PRO-TEST-0000-0000',
          tier: 'pro',
          priority: 10,
          targets: ['linux'],
          queuedAt: 1_700_000_000_000,
          via: 'nats',
          callback: true,
        });
        // A second retry within the duplicate window: dropped by JetStream.
        await republishQueuedIntake(deps, waiting.jobId, 'http');
        expect(await messages()).toBe(1);

        // Dispatched meanwhile, or never recorded: nothing is published.
        const running = job('7a8b9c0d-1e2f-4a3b-9c4d-5e6f7a8b9c0d');
        await insertJob(db, running, 1_700_000_000_000);
        await db.query("UPDATE builds SET status = 'running', attempt = 1 WHERE id = ?", [running.jobId]);
        await republishQueuedIntake(deps, running.jobId, 'http');
        await republishQueuedIntake(deps, '8b9c0d1e-2f3a-4b4c-8d5e-6f7a8b9c0d1e', 'http');
        expect(await messages()).toBe(1);
      } finally {
        await db.end();
        await nc.close();
      }
    },
  );
});
