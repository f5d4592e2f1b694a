// decide() with a fake clock, stopping VMs: the idle clock, draining, the second check, and the
// situations in which a deallocation must never happen. One test per row (harness in
// support/decide-table.ts).
import { decideTable, MIN, T0, WIN, type Row } from './support/decide-table.js';

const rows: Row[] = [
  // Idle, draining, deallocating
  {
    name: 'idle, but not for long enough: nothing',
    view: { power: 'running' },
    memory: { idleSince: T0 - 29 * MIN },
    queue: {},
    actions: [],
  },
  {
    name: 'idle for the idle time: mark draining first, no deallocation yet',
    view: { power: 'running' },
    memory: { idleSince: T0 - 30 * MIN },
    queue: {},
    actions: [],
    expectView: {
      draining: true,
      message: 'The Windows signing VM has been idle for 30 min and is about to be deallocated',
    },
    expectMemory: { drainingSince: T0 },
  },
  {
    name: 'draining, checked again with a newer queue depth: deallocate',
    view: { power: 'running', draining: true },
    memory: { idleSince: T0 - 31 * MIN, drainingSince: T0 - 10_000 },
    queue: {},
    queueAgeMs: 1_000,
    actions: [`deallocate ${WIN}`],
    expectView: { power: 'stopping', draining: true },
  },
  {
    name: 'draining, but no queue depth since draining began: wait',
    view: { power: 'running', draining: true },
    memory: { idleSince: T0 - 31 * MIN, drainingSince: T0 - 10_000 },
    queue: {},
    queueAgeMs: 11_000,
    actions: [],
  },
  {
    name: 'draining and a job is queued meanwhile: draining cancelled, no deallocation',
    view: { power: 'running', draining: true },
    memory: { idleSince: T0 - 31 * MIN, drainingSince: T0 - 10_000 },
    queue: { [WIN]: { queued: 1 } },
    workers: [{ cap: WIN }],
    actions: [],
    expectView: { draining: false, power: 'running' },
  },
  {
    name: 'never deallocate with a job assigned',
    view: { power: 'running', draining: true },
    memory: { idleSince: T0 - 31 * MIN, drainingSince: T0 - 10_000 },
    queue: { [WIN]: { assigned: 1 } },
    workers: [{ cap: WIN }],
    actions: [],
    expectView: { draining: false },
  },
  {
    name: 'never deallocate with a job running',
    view: { power: 'running' },
    memory: { idleSince: T0 - 60 * MIN },
    queue: { [WIN]: { running: 1 } },
    workers: [{ cap: WIN, activeJobs: 1 }],
    actions: [],
    expectView: { draining: false },
  },
  {
    name: 'never deallocate under a live job the worker reports, whatever the queue says',
    view: { power: 'running', draining: true },
    memory: { idleSince: T0 - 60 * MIN, drainingSince: T0 - 20_000 },
    queue: {},
    workers: [{ cap: WIN, activeJobs: 1 }],
    actions: [],
    expectView: { draining: false },
  },
  {
    name: 'queue depth stale (none for > 30 s): unknown, never deallocate',
    view: { power: 'running', draining: true },
    memory: { idleSince: T0 - 60 * MIN, drainingSince: T0 - 40_000 },
    queue: {},
    queueAgeMs: 31_000,
    actions: [],
    expectView: { draining: false },
  },
  {
    name: 'no queue depth ever received: unknown, never deallocate',
    view: { power: 'running' },
    memory: { idleSince: T0 - 60 * MIN },
    actions: [],
    expectView: { draining: false },
  },
  {
    name: 'a VM running that nobody knows about counts as idle from when it is found',
    view: { power: 'deallocated' },
    memory: { idleSince: T0 - 60 * MIN },
    queue: {},
    reading: { power: 'running' },
    actions: [],
    expectView: { power: 'running', draining: false },
    expectMemory: { idleSince: T0 },
  },
  {
    name: 'a deallocation that failed backs off before trying again',
    outcome: { pool: WIN, op: 'deallocate', since: T0 - 2_000, ok: false, error: 'Azure answered 429 to deallocate' },
    view: { power: 'stopping', draining: true },
    memory: { pending: 'deallocate', pendingSince: T0 - 2_000, idleSince: T0 - 40 * MIN, drainingSince: T0 - 12_000 },
    queue: {},
    reading: { power: 'running', at: T0 },
    actions: [],
    expectMemory: { retryAt: T0 + 5_000 },
  },
];

decideTable('decide(): idling and deallocating', rows);
