/**
 * The all-in-one remembers its services' instance ids in its data directory. When it starts
 * again, the ids found there belong to a run that is over (the data directory is locked to one
 * hub at a time), so their liveness records are removed at once: the scheduler releases the dead
 * gateway's workers and re-queues their jobs without waiting for the records to expire.
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { ServiceName } from '@perry-hub/contracts';
import { newInstanceId } from '@perry-hub/runtime';

const FILE = 'instances.json';

export interface InstancePlan {
  readonly ids: ReadonlyMap<ServiceName, string>;
  /**
   * Every instance of the previous run. Each service is given all of them: the first to start
   * removes their records, so the scheduler never takes a dead gateway's workers for live ones.
   */
  readonly predecessors: readonly string[];
}

function readPrevious(file: string): Record<string, string> {
  if (!existsSync(file)) return {};
  try {
    const parsed: unknown = JSON.parse(readFileSync(file, 'utf8'));
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return {};
    return Object.fromEntries(Object.entries(parsed).filter((e): e is [string, string] => typeof e[1] === 'string'));
  } catch {
    // A torn file only costs the fast path: the records then expire on their own.
    return {};
  }
}

/** Choose this run's ids and record them, returning the previous run's. */
export function planInstances(dataDir: string, names: readonly ServiceName[]): InstancePlan {
  const file = join(resolve(dataDir), FILE);
  const previous = readPrevious(file);
  const ids = new Map(names.map((name) => [name, newInstanceId(name)] as const));
  const tmp = `${file}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(Object.fromEntries(ids), null, 2)}\n`);
  renameSync(tmp, file);
  return { ids, predecessors: Object.values(previous) };
}
