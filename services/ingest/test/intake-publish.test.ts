// The intake message of an accepted submission is not lost to JetStream being away for a moment
// (a stream leader election, a NATS node cut off from its cluster): the answer does not wait, the
// message is retried behind it and stored once.
import { describe, expect } from 'vitest';
import { jetstreamManager } from '@nats-io/jetstream';
import { pino } from 'pino';
import { subjects as makeSubjects, topologyFor, topologyNames } from '@perry-hub/contracts';
import type { Pool } from '@perry-hub/db';
import { ensureTopology } from '@perry-hub/runtime';
import { connectTestNats, test } from '@perry-hub/testkit';
import { publishIntake, type NewJob } from '../src/jobs.js';

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
});
