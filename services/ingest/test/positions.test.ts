// A submission's place comes from the scheduler's leader as it queues the job (one message on
// `<p>.positions.<instance>`); without a valid one in time, the ingest asks `queue-position`.
import { describe, expect } from 'vitest';
import { pino } from 'pino';
import { INTAKE_POSITION_HEADER, subjects as makeSubjects } from '@perry-hub/contracts';
import type { Pool } from '@perry-hub/db';
import { connectTestNats, test } from '@perry-hub/testkit';
import { queuePosition } from '../src/jobs.js';
import { PositionNotices } from '../src/positions.js';

describe('queue positions sent by the scheduler', () => {
  test('a notice answers at once; a missing, malformed or foreign one falls back to asking', async ({
    natsUrl,
    prefix,
  }) => {
    const [nc, scheduler] = [await connectTestNats(natsUrl), await connectTestNats(natsUrl)];
    const subjects = makeSubjects(prefix);
    const notices = new PositionNotices(nc, subjects, 'ingest-test1', pino({ level: 'silent' }), 300);
    try {
      await nc.flush();
      const deps = { nc, subjects, log: pino({ level: 'silent' }), db: {} as Pool, positions: notices };
      expect(notices.headers().get(INTAKE_POSITION_HEADER)).toBe('ingest-test1');
      // The asked-for place, as the scheduler's endpoint would answer: counted.
      let asked = 0;
      scheduler.subscribe(subjects.endpoint('scheduler', 'queue-position'), {
        callback: (_e, m) => {
          asked++;
          m.respond(JSON.stringify({ ok: true, result: { position: 7 } }));
        },
      });
      await scheduler.flush();
      const send = (body: string) => scheduler.publish(subjects.positions('ingest-test1'), body);

      // Sent before the submission waits for it (it may come before the intake's ack): kept.
      const a = notices.expect('job-a');
      send(JSON.stringify({ jobId: 'job-a', position: 0 }));
      await scheduler.flush();
      expect(await queuePosition(deps, 'job-a', undefined, a)).toBe(1); // running already: at least 1
      const b = notices.expect('job-b');
      setTimeout(() => send(JSON.stringify({ jobId: 'job-b', position: 3 })), 50);
      expect(await queuePosition(deps, 'job-b', undefined, b)).toBe(3);
      expect(asked).toBe(0);

      // Malformed, another job's, and nothing: each waits, then asks.
      const c = notices.expect('job-c');
      send('not json');
      send(JSON.stringify({ jobId: 'job-c', position: -1 }));
      send(JSON.stringify({ jobId: 'job-x', position: 2 }));
      expect(await queuePosition(deps, 'job-c', undefined, c)).toBe(7);
      expect(asked).toBe(1);
      // Another instance's notices do not reach this one.
      const d = notices.expect('job-d');
      scheduler.publish(subjects.positions('ingest-other'), JSON.stringify({ jobId: 'job-d', position: 2 }));
      expect(await queuePosition(deps, 'job-d', undefined, d)).toBe(7);
      expect(asked).toBe(2);

      // Stopping answers every wait at once (the submission then asks).
      const e = notices.expect('job-e');
      const started = Date.now();
      notices.stop();
      expect(await e()).toBeUndefined();
      expect(Date.now() - started).toBeLessThan(300);
    } finally {
      notices.stop();
      await scheduler.close();
      await nc.close();
    }
  });
});
