/**
 * What a piece of code asks of one stream's JetStream API, counted by a tap on `$JS.API.>`: each
 * request by its kind (`DIRECT.GET`, `STREAM.PURGE`, `STREAM.MSG.GET`, ...). For tests that hold
 * a path to its message count.
 */
import { connectTestNats } from './nats-auth.js';

export interface StreamRequests {
  /** The kinds of the requests `work` sent to the stream, sorted (what came before is not counted). */
  during(work: () => Promise<unknown>): Promise<{ result: unknown; requests: string[] }>;
  close(): Promise<void>;
}

export async function tapStreamRequests(natsUrl: string, stream: string): Promise<StreamRequests> {
  const tap = await connectTestNats(natsUrl);
  const requests: string[] = [];
  tap.subscribe('$JS.API.>', {
    callback: (_e, m) => {
      // `$JS.API.<kind…>.<stream>[.<subject>]`
      const tokens = m.subject.split('.');
      const at = tokens.indexOf(stream);
      if (at > 0) requests.push(tokens.slice(2, at).join('.'));
    },
  });
  await tap.flush();
  return {
    during: async (work) => {
      await tap.flush();
      requests.length = 0;
      const result = await work();
      await tap.flush();
      return { result, requests: [...requests].sort() };
    },
    close: () => tap.close(),
  };
}
