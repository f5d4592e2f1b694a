import { describe, expect, it } from 'vitest';
import { HubError } from '@perry-hub/contracts';
import { appendOnce, type AppendAck } from '../src/index.js';

/** An append whose answers are scripted per call: an ack, or an error to throw. */
function scripted(answers: (AppendAck | Error)[]) {
  const ids: string[] = [];
  const append = async (msgID: string) => {
    ids.push(msgID);
    const answer = answers[Math.min(ids.length - 1, answers.length - 1)]!;
    if (answer instanceof Error) throw answer;
    return answer;
  };
  return { ids, append };
}

const UNCONFIRMED: AppendAck = { seq: 0, duplicate: true };

describe('appendOnce', () => {
  it('returns the first real ack, a duplicate with its sequence included', async () => {
    const { ids, append } = scripted([{ seq: 7, duplicate: true }]);
    expect(await appendOnce(append, { msgID: 'm' })).toEqual({ seq: 7, duplicate: true });
    expect(ids).toEqual(['m']);
  });

  it('retries a failed append under the same id', async () => {
    const { ids, append } = scripted([new Error('timeout'), new Error('no responders'), { seq: 3 }]);
    expect((await appendOnce(append, { msgID: 'm' })).seq).toBe(3);
    expect(ids).toEqual(['m', 'm', 'm']);
  });

  it('never takes "duplicate" without a sequence for stored: it asks where the earlier attempt went', async () => {
    const { ids, append } = scripted([UNCONFIRMED]);
    let asked = 0;
    const ack = await appendOnce(append, { msgID: 'm', stored: async () => (++asked === 2 ? 41 : undefined) });
    expect(ack).toMatchObject({ seq: 41, duplicate: true });
    expect(ids).toEqual(['m', 'm']);
  });

  it('asks before each retry whether a failed attempt went through after all, and then appends no more', async () => {
    const { ids, append } = scripted([new Error('timeout'), new Error('timeout'), { seq: 3 }]);
    let asked = 0;
    const ack = await appendOnce(append, { msgID: 'm', stored: async () => (++asked === 2 ? 12 : undefined) });
    expect(ack).toEqual({ seq: 12, duplicate: true });
    expect([ids, asked]).toEqual([['m', 'm'], 2]);
  });

  it('with storedFirst, asks before the first attempt too: an earlier process may have made it', async () => {
    const { ids, append } = scripted([{ seq: 3 }]);
    expect(await appendOnce(append, { msgID: 'm', storedFirst: true, stored: async () => 5 })).toEqual({
      seq: 5,
      duplicate: true,
    });
    expect(ids).toEqual([]);
    const fresh = scripted([{ seq: 3 }]);
    expect((await appendOnce(fresh.append, { msgID: 'm', storedFirst: true, stored: async () => undefined })).seq).toBe(
      3,
    );
    expect(fresh.ids).toEqual(['m']);
  });

  it('appends under a new id once the old one stays unconfirmed past the grace period', async () => {
    const { ids, append } = scripted([UNCONFIRMED, UNCONFIRMED, UNCONFIRMED, UNCONFIRMED, UNCONFIRMED, UNCONFIRMED]);
    const renamed = async (msgID: string) => (msgID === 'm' ? append(msgID) : { seq: 99 });
    const began = Date.now();
    expect((await appendOnce(renamed, { msgID: 'm', graceMs: 1_000 })).seq).toBe(99);
    expect(Date.now() - began).toBeGreaterThanOrEqual(1_000);
    expect(ids.length).toBeGreaterThan(1);
    expect(ids.every((id) => id === 'm')).toBe(true);
  });

  it('gives up at once on a final refusal, and after forMs on an id that stays unconfirmed', async () => {
    const final = new HubError('INTERNAL_ERROR', 'too big', { retry: 'never' });
    await expect(appendOnce(scripted([final]).append, { msgID: 'm' })).rejects.toBe(final);
    await expect(appendOnce(scripted([UNCONFIRMED]).append, { msgID: 'm', forMs: 300 })).rejects.toThrow(
      /not confirmed/,
    );
  });
});
