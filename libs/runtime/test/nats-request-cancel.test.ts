// nats-core cancels every request it muxes once it is over; the reason it makes up for that
// (nobody sees it) must not capture a stack, and requests must behave as before.
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { errors } from '@nats-io/nats-core';
import { RequestError, RequestOne, type MuxSubscription } from '@nats-io/nats-core/internal';
import { natsInboxPrefix } from '@perry-hub/contracts';
import { connectTestNats, startIsolatedNats, testNatsCredentialsDir, uniquePrefix } from '@perry-hub/testkit';
import { connectNats, type NatsConnection } from '../src/index.js';

const mux = { cancel: () => undefined } as unknown as MuxSubscription;
const frames = (err: Error) =>
  (err.stack ?? '').split('\n').filter((line) => line.trimStart().startsWith('at ')).length;

describe('requests of a hub connection', () => {
  let nats: Awaited<ReturnType<typeof startIsolatedNats>>;
  let service: NatsConnection;
  let nc: NatsConnection;
  beforeAll(async () => {
    nats = await startIsolatedNats();
    // A service's connection puts the change in place, for every connection of the process.
    service = await connectNats(
      { natsUrl: nats.url, natsCredentialsDir: testNatsCredentialsDir(), natsUser: '', natsPassword: '' },
      'test',
      pino({ level: 'silent' }),
      { identity: 'license', inboxPrefix: natsInboxPrefix(uniquePrefix(), 'license') },
    );
    nc = await connectTestNats(nats.url);
  });
  afterAll(async () => {
    await nc?.close();
    await service?.close();
    await nats?.stop();
  });

  it('are cancelled, once over, with a reason that captured no stack', async () => {
    const request = new RequestOne(mux, 'x', { timeout: 60_000 }, false);
    request.cancel();
    const reason = (await request.deferred.catch((err: unknown) => err)) as Error;
    expect(reason).toBeInstanceOf(RequestError);
    expect(reason.message).toBe('cancelled');
    expect(frames(reason)).toBe(0);
    // A stack is still captured where errors are made otherwise.
    expect(frames(new Error('elsewhere'))).toBeGreaterThan(0);
  });

  it('keep a reason given to cancel', async () => {
    const request = new RequestOne(mux, 'x', { timeout: 60_000 }, false);
    const given = new Error('publish failed');
    request.cancel(given);
    await expect(request.deferred).rejects.toBe(given);
  });

  it('are answered, refused without responders and timed out as before', async () => {
    const subject = `${uniquePrefix()}.echo`;
    const sub = nc.subscribe(subject, { callback: (_err, msg) => void msg.respond(msg.data) });
    await nc.flush();
    for (let i = 0; i < 3; i++)
      expect((await nc.request(subject, `ping ${i}`, { timeout: 5_000 })).string()).toBe(`ping ${i}`);
    sub.unsubscribe();
    await nc.flush();
    const refused = (await nc.request(subject, 'x', { timeout: 5_000 }).catch((err: unknown) => err)) as Error;
    expect(refused).toBeInstanceOf(RequestError);
    expect((refused as RequestError).isNoResponders()).toBe(true);

    const silent = nc.subscribe(`${subject}.silent`);
    await nc.flush();
    const timedOut = await nc.request(`${subject}.silent`, 'x', { timeout: 200 }).catch((err: unknown) => err);
    expect(timedOut).toBeInstanceOf(errors.TimeoutError);
    silent.unsubscribe();
  });
});
