/**
 * The verdict of a fault test, from the external history: every acknowledged job completed,
 * exactly once as CLIs saw it, announced once, and counted once as usage.
 */
import { expect } from 'vitest';
import type { ProcessHub } from '../support/process-hub.js';

export async function expectEveryJobCompletedOnce(hub: ProcessHub, settleMs: number): Promise<void> {
  const statuses = await hub.settle(settleMs);
  const acked = [...hub.acknowledged];
  const { completes, done } = await hub.completions();
  const lost = acked.filter((id) => statuses.get(id) !== 'completed');
  const duplicated = acked.filter((id) => (completes.get(id) ?? 0) !== 1 || (done.get(id) ?? 0) !== 1);
  console.log(
    `acknowledged ${acked.length}, completed ${acked.length - lost.length}, lost ${lost.length}, duplicate or missing completions ${duplicated.length}`,
  );
  expect(lost.map((id) => `${id}: ${statuses.get(id)}`)).toEqual([]);
  expect(duplicated.map((id) => `${id}: ${completes.get(id) ?? 0} completes, ${done.get(id) ?? 0} done`)).toEqual([]);
  // Usage is counted from the done events, idempotently by job id.
  await expect.poll(() => hub.usage(), { timeout: 20_000 }).toBe(acked.length);
}
