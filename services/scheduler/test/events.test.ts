import { randomUUID } from 'node:crypto';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { natsInboxPrefix, subjects, topology, topologyNames, type JobDone } from '@perry-hub/contracts';
import { ensureTopology } from '@perry-hub/runtime';
import { connectTestNats, describe, expect, forgetMessageIds, test } from '@perry-hub/testkit';
import { JobEvents } from '../src/events.js';

const error = (jobId: string) => JSON.stringify({ type: 'error', code: 'INTERNAL_ERROR', message: 'x', job_id: jobId });
const complete = (jobId: string) => JSON.stringify({ type: 'complete', job_id: jobId, success: false });
const outcome = (jobId: string): JobDone => ({
  jobId,
  outcome: 'failed',
  licenseKey: 'L',
  tier: 'pro',
  targets: ['linux'],
  attempt: 1,
  finishedAt: Date.now(),
  callback: true,
});

describe("a finished job's last messages", () => {
  test('are stored once when published again where JetStream no longer remembers their ids, and the missing ones appended', async ({
    natsUrl,
    prefix,
  }) => {
    const admin = await connectTestNats(natsUrl);
    // As the scheduler: its permissions allow the check (a purge and a stored-message get).
    const nc = await connectTestNats(natsUrl, { as: 'scheduler', inboxPrefix: natsInboxPrefix(prefix, 'scheduler') });
    try {
      const names = topologyNames(prefix);
      const s = subjects(prefix);
      await ensureTopology(admin, topology(prefix));
      // The ids' memory misses the first appends, as a new cluster leader's does for an append
      // its predecessor proposed.
      const { forgotten } = await forgetMessageIds(admin, names.eventsStream);
      const jsm = await jetstreamManager(admin);
      const events = new JobEvents(jetstream(nc), s, names.eventsStream);

      // All of one job's messages stored; of another's, only its first final event.
      const whole = randomUUID();
      const part = randomUUID();
      const messages = (jobId: string) => ({ events: [error(jobId), complete(jobId)], done: outcome(jobId) });
      await events.final(whole, messages(whole));
      await jetstream(admin).publish(s.jobEvents(part), error(part), { msgID: `${part}:final:0` });
      await forgotten();
      await events.final(whole, messages(whole), true);
      await events.final(part, messages(part), true);

      const stored = async (jobId: string) => {
        const info = await jsm.streams.info(names.eventsStream, { subjects_filter: `${s.prefix}.>` });
        const count = (subject: string) => info.state.subjects?.[subject] ?? 0;
        return [count(s.jobEvents(jobId)), count(s.jobDone(jobId)), count(s.jobCallbacks(jobId))];
      };
      expect(await stored(whole)).toEqual([2, 1, 1]);
      expect(await stored(part)).toEqual([2, 1, 1]);
      const last = await jsm.streams.getMessage(names.eventsStream, { last_by_subj: s.jobEvents(part) });
      expect(last?.string()).toBe(complete(part));

      // Without the check (a first publish), the same messages would be stored twice here.
      await events.final(whole, messages(whole));
      expect(await stored(whole)).toEqual([4, 2, 2]);
    } finally {
      await nc.close();
      await admin.close();
    }
  });
});
