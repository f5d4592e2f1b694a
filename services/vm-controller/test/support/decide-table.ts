/**
 * The harness of the decide() tables: a row describes one situation (what the controller
 * remembers, what the bus and the cloud say, the time) and what must follow; each row is one test.
 */
import { describe, expect, test } from 'vitest';
import type { CapabilityDepth, VmPoolState, VmPowerState, VmProviderKind } from '@perry-hub/contracts';
import {
  decide,
  initialMemory,
  settle,
  type Action,
  type ControllerState,
  type Outcome,
  type PoolMemory,
  type Signals,
} from '../../src/index.js';
import type { Timings } from '../../src/settings.js';

export const T0 = 1_700_000_000_000;
export const MIN = 60_000;
const timings: Timings = {
  idleMs: 30 * MIN,
  drainCheckMs: 10_000,
  queueStaleMs: 30_000,
  stuckStartMs: 15 * MIN,
  prewarmTtlMs: 30 * MIN,
  backoffMs: 5_000,
  backoffMaxMs: 300_000,
  bootEstimateSecs: 90,
};
export const WIN = 'windows-sign';
export const MAC = 'macos-sign';

export interface Row {
  name: string;
  provider?: VmProviderKind;
  pool?: string;
  view?: Partial<VmPoolState>;
  memory?: Partial<Omit<PoolMemory, 'view' | 'spec'>>;
  /** Applied with settle() before deciding. */
  outcome?: Outcome;
  /** Per capability; omitted = no queue depth ever received. */
  queue?: Record<string, Partial<CapabilityDepth>>;
  queueAgeMs?: number;
  workers?: { cap: string; activeJobs?: number; connectedAt?: number }[];
  prewarms?: { cap: string; at: number }[];
  /** The pool's last cloud reading (power null = the status call failed). */
  reading?: { power: VmPowerState | null; at?: number };
  now?: number;
  actions: string[];
  expectView?: Partial<VmPoolState>;
  expectMemory?: Partial<PoolMemory>;
}

function render(a: Action): string {
  switch (a.type) {
    case 'start':
      return `start ${a.pool}${a.replace ? ' (replace)' : ''}`;
    case 'deallocate':
      return `deallocate ${a.pool}`;
    case 'alert':
      return `alert ${a.alert.pool} ${a.alert.code}`;
    case 'metric': {
      const [key, value] = Object.entries(a.metric).find(([k]) => k !== 'pool') ?? [];
      return `metric ${a.metric.pool} ${key}=${String(value)}`;
    }
  }
}

function build(row: Row): { state: ControllerState; signals: Signals; now: number } {
  const now = row.now ?? T0;
  const pool = row.pool ?? WIN;
  const base = initialMemory({ pool, capability: pool, target: 'rg/vm' }, null, T0 - 120 * MIN);
  const memory: PoolMemory = {
    ...base,
    ...row.memory,
    view: { ...base.view, power: 'deallocated', message: '', ...row.view },
  };
  let state: ControllerState = { provider: row.provider ?? 'azure', timings, pools: [memory] };
  if (row.outcome) state = settle(state, row.outcome, now);
  const depth = (d: Partial<CapabilityDepth>): CapabilityDepth => ({
    queued: 0,
    oldestQueuedAt: null,
    assigned: 0,
    running: 0,
    ...d,
  });
  const signals: Signals = {
    queue: row.queue
      ? {
          depth: {
            at: now - (row.queueAgeMs ?? 500),
            capabilities: Object.fromEntries(Object.entries(row.queue).map(([k, v]) => [k, depth(v)])),
          },
          receivedAt: now - (row.queueAgeMs ?? 500),
        }
      : null,
    workers: (row.workers ?? []).map((w, i) => ({
      workerId: `w${i}`,
      name: `worker ${i}`,
      capabilities: [w.cap],
      maxConcurrent: 1,
      activeJobs: w.activeJobs ?? 0,
      perryVersion: '0.5.14',
      gatewayId: 'g',
      connectedAt: w.connectedAt ?? now - 1_000,
      heartbeatAt: now,
    })),
    prewarms: (row.prewarms ?? []).map((p, i) => ({ capability: p.cap, jobId: `job-${i}`, at: p.at })),
    cloud: row.reading ? { [pool]: { power: row.reading.power, at: row.reading.at ?? now - 100 } } : {},
  };
  return { state, signals, now };
}

/** One test per row; decide() must also be pure (same input, same answer, input untouched). */
export function decideTable(title: string, rows: readonly Row[]): void {
  describe(title, () => {
    test.for(rows)('$name', (row) => {
      const { state, signals, now } = build(row);
      const { state: next, actions } = decide(state, signals, now);
      expect(actions.map(render)).toEqual(row.actions);
      const pool = next.pools[0]!;
      if (row.expectView) expect(pool.view).toMatchObject(row.expectView);
      if (row.expectMemory) expect(pool).toMatchObject(row.expectMemory);
      expect(decide(state, signals, now)).toEqual({ state: next, actions });
    });
  });
}
