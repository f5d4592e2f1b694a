// Looking for an append whose answer was lost: by its message id (or appendOnce's renamed
// `<id>.<n>`) on its subject, wherever it is among the subject's messages, behind a barrier.
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { describe, expect } from 'vitest';
import { connectTestNats, test } from '@perry-hub/testkit';
import { findAppend } from '../src/index.js';

describe('findAppend', () => {
  test('finds the append by id or renamed id, last or not; nothing for another id or an empty subject', async ({
    natsUrl,
    prefix,
  }) => {
    const nc = await connectTestNats(natsUrl);
    try {
      const jsm = await jetstreamManager(nc);
      const js = jetstream(nc);
      const stream = `${prefix.replace(/\W/g, '_')}_FIND`;
      await jsm.streams.add({ name: stream, subjects: [`${prefix}.find.>`] });
      const subject = `${prefix}.find.job`;
      const place = { stream, barrier: `${prefix}.find.barrier`, subject };
      // Another subject's messages are interleaved: they are never taken for the append's.
      const other = `${prefix}.find.other`;

      expect(await findAppend(jsm, place, 'a')).toBeUndefined();
      const a = await js.publish(subject, 'a', { msgID: 'a' });
      await js.publish(other, 'x', { msgID: 'b' });
      expect(await findAppend(jsm, place, 'a')).toBe(a.seq);
      // Followed by other messages on its subject: found among them.
      const renamed = await js.publish(subject, 'b', { msgID: 'b.1' });
      for (let i = 0; i < 5; i++) {
        await js.publish(subject, `log ${i}`);
        await js.publish(other, `log ${i}`, { msgID: `c${i}` });
      }
      expect(await findAppend(jsm, place, 'a')).toBe(a.seq);
      expect(await findAppend(jsm, place, 'b')).toBe(renamed.seq);
      // Neither a longer id with the same start nor one only on another subject.
      expect(await findAppend(jsm, place, 'b.')).toBeUndefined();
      expect(await findAppend(jsm, place, 'c0')).toBeUndefined();
      expect(await findAppend(jsm, place, 'b.1.2')).toBeUndefined();
      // The barrier removed nothing.
      expect((await jsm.streams.info(stream)).state.messages).toBe(13);
    } finally {
      await nc.close();
    }
  });
});
