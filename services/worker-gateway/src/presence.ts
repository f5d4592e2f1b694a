import type { KV } from '@nats-io/kv';
import { WorkerPresence } from '@perry-hub/contracts';
import { isValid } from '@perry-hub/runtime';

/** The only labels the original's status ever reported, in its order (reference 1.2 #1). */
const STATUS_TARGETS = ['macos', 'ios', 'android', 'linux', 'windows'] as const;

export async function readPresence(kv: KV): Promise<WorkerPresence[]> {
  const workers: WorkerPresence[] = [];
  for await (const key of await kv.keys()) {
    const entry = await kv.get(key);
    if (!entry || entry.length === 0) continue;
    const value: unknown = entry.json();
    if (isValid(WorkerPresence, value)) workers.push(value);
  }
  return workers;
}

export function supportedTargets(workers: readonly WorkerPresence[]): string[] {
  const caps = new Set(workers.flatMap((w) => w.capabilities));
  return STATUS_TARGETS.filter((t) => caps.has(t));
}
