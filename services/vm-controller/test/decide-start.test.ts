// decide() with a fake clock, starting VMs: on demand, on a pre-warm hint, after failures, when
// stuck; per provider and per pool. One test per row (harness in support/decide-table.ts).
import { decideTable, MAC, MIN, T0, WIN, type Row } from './support/decide-table.js';

const rows: Row[] = [
  // Starting on demand
  {
    name: 'sign work waits, no worker, VM deallocated: one start, with the demand-to-start time',
    queue: { [WIN]: { queued: 1, oldestQueuedAt: T0 - 1_200 } },
    actions: [`start ${WIN}`, `metric ${WIN} demandToStartMs=1200`],
    expectView: {
      power: 'starting',
      startRequestedAt: T0,
      message: 'Starting the Windows signing VM (takes about 90 s)',
    },
  },
  {
    name: 'a second job while the start is in flight: no second start',
    view: { power: 'starting', startRequestedAt: T0 - 20_000 },
    memory: { pending: 'start', pendingSince: T0 - 20_000 },
    queue: { [WIN]: { queued: 2 } },
    actions: [],
  },
  {
    name: 'restarted mid-start (state says starting, the cloud too): no second start',
    view: { power: 'starting', startRequestedAt: T0 - 40_000 },
    queue: { [WIN]: { queued: 1 } },
    reading: { power: 'starting' },
    actions: [],
  },
  {
    name: 'a worker with the capability is already connected: no start',
    queue: { [WIN]: { queued: 1 } },
    workers: [{ cap: WIN }],
    actions: [],
  },
  {
    name: 'VM already running (its worker still booting): no start',
    view: { power: 'running' },
    queue: { [WIN]: { queued: 1 } },
    reading: { power: 'running' },
    actions: [],
    expectView: { message: 'The Windows signing VM is running; waiting for its windows-sign worker to connect' },
  },
  {
    name: 'power unknown and never read: wait for the first reading',
    view: { power: 'unknown' },
    queue: { [WIN]: { queued: 1 } },
    actions: [],
  },
  {
    name: 'power unknown because reading failed: start anyway (a start is idempotent)',
    view: { power: 'unknown' },
    queue: { [WIN]: { queued: 1 } },
    reading: { power: null },
    actions: [`start ${WIN}`, `metric ${WIN} demandToStartMs=0`],
  },
  {
    name: 'work waits while the VM is being deallocated: wait for it, say so',
    view: { power: 'stopping', draining: true },
    memory: { pending: 'deallocate', pendingSince: T0 - 5_000 },
    queue: { [WIN]: { queued: 1 } },
    actions: [],
    expectView: {
      message: 'The Windows signing VM is being deallocated; it starts again as soon as that has finished',
    },
  },
  {
    name: 'deallocation finished with work waiting: start again',
    view: { power: 'stopping', draining: true },
    memory: { settledAt: T0 - 1_000, demandSince: T0 - 20_000 },
    queue: { [WIN]: { queued: 1 } },
    reading: { power: 'deallocated', at: T0 - 500 },
    actions: [`start ${WIN}`, `metric ${WIN} demandToStartMs=20000`],
    expectView: { draining: false, power: 'starting' },
  },
  {
    name: 'a failed start backs off and says why',
    outcome: { pool: WIN, op: 'start', since: T0 - 3_000, ok: false, error: 'Azure answered 500 to start' },
    view: { power: 'starting', startRequestedAt: T0 - 3_000 },
    memory: { pending: 'start', pendingSince: T0 - 3_000 },
    queue: { [WIN]: { queued: 1 } },
    reading: { power: null, at: T0 },
    actions: [],
    expectView: { message: 'Could not start the Windows signing VM (Azure answered 500 to start); retrying in 5 s' },
    expectMemory: { failures: 1, retryAt: T0 + 5_000 },
  },
  {
    name: 'after the backoff the start is retried',
    view: { power: 'deallocated' },
    memory: { failures: 2, retryAt: T0 - 1 },
    queue: { [WIN]: { queued: 1 } },
    actions: [`start ${WIN}`, `metric ${WIN} demandToStartMs=0`],
  },
  {
    name: 'the outcome of an abandoned start is ignored',
    outcome: { pool: WIN, op: 'start', since: T0 - 99_000, ok: false, error: 'start abandoned' },
    view: { power: 'starting', startRequestedAt: T0 - 1_000 },
    memory: { pending: 'start', pendingSince: T0 - 1_000 },
    queue: { [WIN]: { queued: 1 } },
    actions: [],
    expectMemory: { pending: 'start', failures: 0 },
  },
  {
    name: 'a reading sent before the last operation settled is ignored',
    view: { power: 'starting', startRequestedAt: T0 - 60_000 },
    memory: { settledAt: T0 - 1_000 },
    queue: { [WIN]: { queued: 1 } },
    reading: { power: 'deallocated', at: T0 - 2_000 },
    actions: [],
    expectView: { power: 'starting' },
  },

  // Pre-warm
  {
    name: 'pre-warm: a windows job started its first stage, start now',
    prewarms: [{ cap: WIN, at: T0 - 300 }],
    queue: {},
    actions: [`start ${WIN}`, `metric ${WIN} demandToStartMs=300`],
  },
  {
    name: 'pre-warm hint older than its TTL: ignored',
    prewarms: [{ cap: WIN, at: T0 - 31 * MIN }],
    queue: {},
    actions: [],
  },
  {
    name: 'pre-warmed job failed, nothing else needs the VM: its idle clock starts',
    view: { power: 'running' },
    memory: { busy: true, idleSince: T0 - 1_000 },
    queue: {},
    reading: { power: 'running' },
    actions: [],
    expectView: { lastJobEndedAt: T0, draining: false },
    expectMemory: { idleSince: T0 - 1_000, busy: false },
  },

  // Stuck starts, boot time
  {
    name: 'stuck starting for 15 min with work waiting: alert and start again',
    view: { power: 'starting', startRequestedAt: T0 - 15 * MIN },
    memory: { pending: 'start', pendingSince: T0 - 15 * MIN },
    queue: { [WIN]: { queued: 1 } },
    actions: [`alert ${WIN} VM_STUCK_STARTING`, `start ${WIN} (replace)`],
    expectView: { startRequestedAt: T0 },
  },
  {
    name: 'stuck starting with nothing waiting: alert only',
    view: { power: 'starting', startRequestedAt: T0 - 16 * MIN },
    queue: {},
    reading: { power: 'starting' },
    actions: [`alert ${WIN} VM_STUCK_STARTING`],
  },
  {
    name: 'the first worker after a start: boot time from the start call',
    view: { power: 'running', startRequestedAt: T0 - 95_000 },
    memory: { bootPending: true },
    queue: { [WIN]: { queued: 1 } },
    workers: [{ cap: WIN, connectedAt: T0 - 2_000 }],
    actions: [`metric ${WIN} bootMs=93000`],
    expectView: { message: 'The Windows signing VM is running', lastBootMs: 93_000 },
  },

  // Providers and pools
  {
    name: 'provider none: no start, and waiting jobs are told why',
    provider: 'none',
    view: { power: 'unknown' },
    queue: { [WIN]: { queued: 1 } },
    actions: [],
    expectView: { message: 'No windows-sign worker is connected and automatic VM start is disabled' },
  },
  {
    name: 'provider none never deallocates a VM',
    provider: 'none',
    view: { power: 'running' },
    memory: { idleSince: T0 - 60 * MIN },
    queue: {},
    reading: { power: 'running' },
    actions: [],
    expectView: { draining: false },
  },
  {
    name: 'a macos-sign pool starts for macos-sign work',
    pool: MAC,
    queue: { [MAC]: { queued: 1 }, [WIN]: { queued: 0 } },
    actions: [`start ${MAC}`, `metric ${MAC} demandToStartMs=0`],
    expectView: { message: 'Starting the macOS signing VM (takes about 90 s)' },
  },
  {
    name: 'windows-sign work does not start the macos-sign pool',
    pool: MAC,
    queue: { [WIN]: { queued: 3 } },
    actions: [],
  },
];

decideTable('decide(): starting', rows);
