/**
 * Baselines taken in the same run on the same machine: what the bus itself costs (a NATS
 * request to a trivial echo responder, a plain publish to a subscriber, both through the same
 * nats-server as the hub) and what storing bytes minimally costs (disk write plus SHA-256).
 */
import { createHash } from 'node:crypto';
import { createWriteStream, rmSync } from 'node:fs';
import type { NatsConnection } from '@nats-io/nats-core';
import { atRate, summarize, type Summary } from './stats.js';

const SUBJECT = 'bench.baseline';

/** Round trips of a request (`bytes` long) to an echo responder on another connection. */
export async function natsRequestReply(
  connect: () => Promise<NatsConnection>,
  perSecond: number,
  seconds: number,
  bytes: number,
): Promise<Summary> {
  const responder = await connect();
  const requester = await connect();
  try {
    responder.subscribe(`${SUBJECT}.echo`, { callback: (_err, msg) => void msg.respond(msg.data) });
    await responder.flush();
    const payload = new Uint8Array(bytes).fill(120);
    const samples: number[] = [];
    await atRate(perSecond, seconds, async () => {
      const t0 = performance.now();
      await requester.request(`${SUBJECT}.echo`, payload, { timeout: 5_000 });
      samples.push(performance.now() - t0);
    });
    return summarize(samples);
  } finally {
    await responder.close();
    await requester.close();
  }
}

/** Publish to subscribe latency of `bytes`-long messages, on two connections. */
export async function natsPubSub(
  connect: () => Promise<NatsConnection>,
  perSecond: number,
  seconds: number,
  bytes: number,
): Promise<Summary> {
  const subscriber = await connect();
  const publisher = await connect();
  try {
    const sentAt: number[] = [];
    const samples: number[] = [];
    const total = Math.round(perSecond * seconds);
    let done!: () => void;
    const all = new Promise<void>((resolve) => (done = resolve));
    subscriber.subscribe(`${SUBJECT}.pubsub`, {
      callback: (_err, msg) => {
        const at = performance.now();
        const seq = new DataView(msg.data.buffer, msg.data.byteOffset).getUint32(0);
        samples.push(at - sentAt[seq]!);
        if (samples.length === total) done();
      },
    });
    await subscriber.flush();
    await atRate(perSecond, seconds, async (i) => {
      const payload = new Uint8Array(bytes).fill(120);
      new DataView(payload.buffer).setUint32(0, i);
      sentAt[i] = performance.now();
      publisher.publish(`${SUBJECT}.pubsub`, payload);
    });
    await Promise.race([all, new Promise((resolve) => setTimeout(resolve, 10_000))]);
    return summarize(samples);
  } finally {
    await subscriber.close();
    await publisher.close();
  }
}

/** MiB/s of writing `data` to a file in 256 KiB chunks while hashing it with SHA-256. */
export async function diskWriteAndHash(path: string, data: Buffer): Promise<number> {
  const CHUNK = 256 * 1024;
  const t0 = performance.now();
  await new Promise<void>((resolve, reject) => {
    const hash = createHash('sha256');
    const out = createWriteStream(path);
    out.on('error', reject);
    out.on('close', () => {
      hash.digest();
      resolve();
    });
    let offset = 0;
    const write = () => {
      while (offset < data.length) {
        const chunk = data.subarray(offset, offset + CHUNK);
        offset += chunk.length;
        hash.update(chunk);
        if (!out.write(chunk)) return void out.once('drain', write);
      }
      out.end();
    };
    write();
  });
  const seconds = (performance.now() - t0) / 1000;
  rmSync(path, { force: true });
  return data.length / 2 ** 20 / seconds;
}
