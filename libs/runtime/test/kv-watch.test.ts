// watchKv on a slow link: every creation takes longer than the wait before the next is made beside
// it, and still the first one made is the watch (a creation not answered in time is not dropped);
// the others are stopped as they arrive. Real nats-server, reached through a proxy that holds
// every chunk back in both directions.
import { createServer, connect as tcpConnect, type Server, type Socket } from 'node:net';
import { Kvm } from '@nats-io/kv';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connectTestNats, expect, test, until } from '@perry-hub/testkit';
import { watchKv } from '../src/index.js';

/**
 * Forwards each chunk `delayMs` late, in order, both ways: a link with a long round trip. Starts
 * at 0 (nats-server wants a client's CONNECT within 2 s); raised only, which keeps the order.
 */
async function slowLink(target: URL): Promise<{ url: string; delayMs: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const relay = (from: Socket, to: Socket) =>
    from.on('data', (chunk) => setTimeout(() => to.destroyed || to.write(chunk), link.delayMs));
  const server: Server = createServer((client) => {
    const upstream = tcpConnect(Number(target.port), target.hostname);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => undefined).on('close', () => (client.destroy(), upstream.destroy()));
    }
    relay(client, upstream);
    relay(upstream, client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  const link = {
    url: `nats://127.0.0.1:${port}`,
    delayMs: 0,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
  return link;
}

test('a creation slower than the wait still becomes the watch; the ones made beside it are stopped', async ({
  natsUrl,
  prefix,
}) => {
  const direct = await connectTestNats(natsUrl);
  const link = await slowLink(new URL(natsUrl));
  const slow = await connectTestNats(link.url);
  try {
    const bucket = `${prefix}-watch`;
    const kv = await new Kvm(jetstream(direct)).create(bucket, { history: 1 });
    const slowKv = await new Kvm(jetstream(slow, { timeout: 20_000 })).open(bucket);
    const jsm = await jetstreamManager(direct);
    // 1.5 s each way: a consumer create is answered after more than 3 s, past the 2 s wait.
    link.delayMs = 1_500;
    const consumers = async () =>
      (await jsm.consumers.list(`KV_${bucket}`).next()).sort((a, b) => Date.parse(a.created) - Date.parse(b.created));

    const watch = await watchKv(slowKv, { key: 'probe.>' }, 12_000);
    await kv.put('probe.a', 'one');
    const first = await watch[Symbol.asyncIterator]().next();
    expect(first.done ? undefined : `${first.value.key}=${first.value.string()}`).toBe('probe.a=one');
    // A second creation was made beside the first, which won; the second was stopped on arrival
    // and has no subscriber left (the server removes it after its inactive threshold).
    const made = await until('the creations made beside the first stopped', async () => {
      const list = await consumers();
      return list.length >= 2 && list.filter((c) => c.push_bound).length === 1 ? list : undefined;
    });
    expect(made.map((c) => c.push_bound === true)).toEqual([true, ...made.slice(1).map(() => false)]);
    watch.stop();
  } finally {
    await slow.close();
    await link.close();
    await direct.close();
  }
});
