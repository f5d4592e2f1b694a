// A work-queue stream restored behind its consumer (work-queue.ts): the pure finding, one row
// per case, then the looks and the re-creation on a real nats-server. The whole story, a stream's
// files put back under a running scheduler, is in the scheduler's tests.
import { describe, expect, test as plain } from 'vitest';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { subjects, topology, topologyNames, type ConsumerSpec } from '@perry-hub/contracts';
import { connectTestNats, test } from '@perry-hub/testkit';
import { ensureTopology, recreateConsumer, strandedBy, strandedConsumer, type WorkQueueLook } from '../src/index.js';

const rows: { name: string; look: WorkQueueLook; stranded: RegExp | undefined }[] = [
  {
    name: 'empty, all acknowledged',
    look: { delivered: 7, ackFloor: 7, firstSeq: 8, lastSeq: 7, messages: 0 },
    stranded: undefined,
  },
  {
    name: 'messages waiting above the floor',
    look: { delivered: 7, ackFloor: 5, firstSeq: 6, lastSeq: 9, messages: 4 },
    stranded: undefined,
  },
  {
    name: 'never used',
    look: { delivered: 0, ackFloor: 0, firstSeq: 0, lastSeq: 0, messages: 0 },
    stranded: undefined,
  },
  {
    name: 'the stream restored at 0, nothing new yet',
    look: { delivered: 251, ackFloor: 251, firstSeq: 0, lastSeq: 0, messages: 0 },
    stranded: /delivered up to sequence 251, past the stream's last \(0\)/,
  },
  {
    name: 'the stream restored at 0, 61 new messages the consumer skips',
    look: { delivered: 251, ackFloor: 251, firstSeq: 1, lastSeq: 61, messages: 61 },
    stranded: /past the stream's last \(61\)/,
  },
  {
    name: 'new messages numbered past the consumer again: the skipped ones are still stored below its floor',
    look: { delivered: 306, ackFloor: 306, firstSeq: 1, lastSeq: 306, messages: 251 },
    stranded: /holds sequence 1, at or below the consumer's acknowledged floor \(306\)/,
  },
];

describe('strandedBy', () => {
  for (const row of rows)
    plain(row.name, () => {
      const found = strandedBy(row.look);
      if (row.stranded === undefined) expect(found).toBeUndefined();
      else expect(found).toMatch(row.stranded);
    });
});

test('a healthy consumer is not stranded; one created again delivers what the stream holds from its start', async ({
  natsUrl,
  prefix,
}) => {
  const nc = await connectTestNats(natsUrl);
  try {
    const names = topologyNames(prefix);
    const stream = topology(prefix).find((e) => e.kind === 'stream' && e.name === names.intakeStream)!;
    const spec = topology(prefix).find(
      (e): e is ConsumerSpec => e.kind === 'consumer' && e.durable === names.schedulerIntakeConsumer,
    )!;
    await ensureTopology(nc, [stream, spec]);
    const js = jetstream(nc);
    const s = subjects(prefix);
    for (const id of ['a', 'b', 'c']) await js.publish(s.intake(id), '{}');
    const consumer = await js.consumers.get(spec.stream, spec.durable);
    // a acknowledged, b delivered and not acknowledged, c not delivered yet.
    (await consumer.next())!.ack();
    await consumer.next();
    expect(await strandedConsumer(nc, spec, 10)).toBeUndefined();

    await recreateConsumer(nc, spec);
    const info = await (await jetstreamManager(nc)).consumers.info(spec.stream, spec.durable);
    expect(info.num_pending).toBe(2); // b and c, again
    expect(info.num_ack_pending).toBe(0);
    expect(info.config.max_deliver).toBe(spec.maxDeliver);
    expect(info.config.ack_wait).toBe(spec.ackWaitMs * 1_000_000);
    expect(await strandedConsumer(nc, spec, 10)).toBeUndefined();
  } finally {
    await nc.close();
  }
});
