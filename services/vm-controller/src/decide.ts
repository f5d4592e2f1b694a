/**
 * The vm-controller's decisions, apart from all I/O: given what it remembers, what the bus and
 * the cloud say, and the time, what should each pool's state be and what should be done.
 *
 * The rules, per pool (pool = a capability such as windows-sign, backed by one VM):
 * - Start when work waits for the capability (or a pre-warm hint wants it), no worker with the
 *   capability is connected, and the VM is deallocated (or unknown after a reading was
 *   attempted); never while another operation on the pool is in flight or backing off.
 * - The idle clock runs while nothing is queued, assigned or running for the capability, no
 *   connected worker of it has an active job, and no pre-warm hint wants it. After the idle time,
 *   mark the pool draining (the scheduler stops assigning), and only when a queue depth measured
 *   after that still shows nothing, deallocate. A stale queue depth is unknown: never deallocate
 *   on unknown.
 * - A start that has not reached a connected worker after the stuck time raises an alert and, if
 *   the VM is still wanted, is issued again (abandoning the stuck one).
 * - Cloud readings override our belief only when no operation is in flight and the reading was
 *   sent after the last operation settled; a VM found up that we did not start counts as idle
 *   from the moment it was found.
 */
import type { CapabilityDepth, PrewarmSignal, VmPoolState, WorkerPresence } from '@perry-hub/contracts';
import { describePool } from './messages.js';
import type { Action, ControllerState, PoolMemory, Signals } from './memory.js';

export type { Action, ControllerState, PoolMemory, Signals } from './memory.js';

export interface Decision {
  readonly state: ControllerState;
  readonly actions: readonly Action[];
}

const NO_DEPTH: CapabilityDepth = { queued: 0, oldestQueuedAt: null, assigned: 0, running: 0 };

export function decide(state: ControllerState, signals: Signals, now: number): Decision {
  const actions: Action[] = [];
  const pools = state.pools.map((m) => decidePool(state, m, signals, now, actions));
  return { state: { ...state, pools }, actions };
}

interface Facts {
  depth: CapabilityDepth;
  /** The last queue depth is fresh enough to act on for deallocation. */
  known: boolean;
  workers: WorkerPresence[];
  prewarms: PrewarmSignal[];
  wanted: boolean;
  busy: boolean;
}

function factsFor(state: ControllerState, m: PoolMemory, signals: Signals, now: number): Facts {
  const { capability } = m.spec;
  const t = state.timings;
  const depth = signals.queue?.depth.capabilities[capability] ?? NO_DEPTH;
  const known = signals.queue !== null && now - signals.queue.receivedAt <= t.queueStaleMs;
  const workers = signals.workers.filter((w) => w.capabilities.includes(capability));
  const prewarms = signals.prewarms.filter((p) => p.capability === capability && now - p.at < t.prewarmTtlMs);
  const wanted = depth.queued > 0 || prewarms.length > 0;
  const activeOnWorkers = workers.reduce((sum, w) => sum + w.activeJobs, 0);
  const busy = wanted || depth.assigned > 0 || depth.running > 0 || activeOnWorkers > 0;
  return { depth, known, workers, prewarms, wanted, busy };
}

/** When the current demand began, by the signals' own clocks where they say so. */
function demandStartedAt(f: Facts, now: number): number {
  const times = f.prewarms.map((p) => p.at);
  if (f.depth.queued > 0 && f.depth.oldestQueuedAt !== null) times.push(f.depth.oldestQueuedAt);
  return Math.min(now, ...times);
}

function decidePool(state: ControllerState, m0: PoolMemory, signals: Signals, now: number, out: Action[]): PoolMemory {
  const t = state.timings;
  const f = factsFor(state, m0, signals, now);
  const canAct = state.provider !== 'none';
  const pool = m0.spec.pool;
  let m: PoolMemory = m0;
  let view: VmPoolState = m0.view;

  // 1. The cloud's reading, if it is newer than our last operation.
  const reading = signals.cloud[pool];
  if (canAct && reading?.power && reading.power !== 'unknown' && m.pending === null && reading.at >= m.settledAt) {
    const power = reading.power;
    if (power !== view.power) {
      // Up although we last knew it down: someone else started it, and it is idle until proven busy.
      const foundUp =
        (power === 'running' || power === 'starting') && (view.power === 'deallocated' || view.power === 'stopping');
      if (foundUp) m = { ...m, idleSince: now };
      view = { ...view, power };
      if (power === 'starting') view = { ...view, startRequestedAt: view.startRequestedAt ?? now };
      if (power === 'deallocated') {
        view = { ...view, startRequestedAt: null };
        m = { ...m, bootPending: false };
      }
    }
  }

  // 2. The idle clock and the demand clock.
  if (f.busy) m = { ...m, idleSince: now };
  if (m0.busy && !f.busy) view = { ...view, lastJobEndedAt: now };
  m = { ...m, busy: f.busy };
  const needsStart = f.wanted && f.workers.length === 0;
  m = { ...m, demandSince: needsStart ? (m.demandSince ?? demandStartedAt(f, now)) : null };

  // 3. The first worker after a start: boot time.
  if (f.workers.length > 0 && m.bootPending && view.startRequestedAt !== null) {
    const since = view.startRequestedAt;
    const connectedAt = Math.min(...f.workers.map((w) => (w.connectedAt >= since ? w.connectedAt : now)));
    const bootMs = Math.max(0, connectedAt - since);
    out.push({ type: 'metric', metric: { pool, bootMs } });
    view = { ...view, lastBootMs: bootMs };
    m = { ...m, bootPending: false };
  }

  const backingOff = m.retryAt !== null && now < m.retryAt;

  // 4. Draining holds only for an idle VM that is up or going down: any work cancels it, and so
  //    does losing sight of the queue (unless the deallocation is already under way).
  const deallocating = m.pending === 'deallocate' || view.power === 'stopping';
  const drainValid = view.power === 'running' || view.power === 'stopping';
  if (view.draining && (!drainValid || (!deallocating && (f.busy || !f.known)))) {
    view = { ...view, draining: false };
    m = { ...m, drainingSince: null };
  }

  // 5. Start on demand.
  const startable = view.power === 'deallocated' || (view.power === 'unknown' && reading !== undefined);
  if (canAct && needsStart && m.pending === null && !backingOff && startable) {
    out.push({ type: 'start', pool, since: now, replace: false });
    out.push({ type: 'metric', metric: { pool, demandToStartMs: Math.max(0, now - (m.demandSince ?? now)) } });
    view = { ...view, power: 'starting', startRequestedAt: now, draining: false };
    m = { ...m, pending: 'start', pendingSince: now, bootPending: true, idleSince: now, drainingSince: null };
  }

  // 6. A start that does not reach a connected worker in time: alert; start again if still wanted
  //    and the VM is not even up (starting a running VM changes nothing).
  const startedAt = view.startRequestedAt;
  const waitingForBoot = view.power === 'starting' || (view.power === 'running' && m.bootPending);
  if (canAct && waitingForBoot && startedAt !== null && now - startedAt >= t.stuckStartMs && f.workers.length === 0) {
    const minutes = Math.round((now - startedAt) / 60_000);
    const retry = f.wanted && view.power === 'starting' && !backingOff;
    const state = view.power === 'starting' ? 'starting' : 'running with no worker connected';
    out.push({
      type: 'alert',
      alert: {
        pool,
        code: 'VM_STUCK_STARTING',
        message: `The ${pool} VM has been ${state} for ${minutes} min${retry ? '; starting it again' : ''}`,
        at: now,
      },
    });
    if (retry) {
      out.push({ type: 'start', pool, since: now, replace: m.pending === 'start' });
      m = { ...m, pending: 'start', pendingSince: now, bootPending: true };
    }
    // The clock restarts either way, so the alert repeats once per stuck period, not every tick.
    if (view.power === 'starting') view = { ...view, startRequestedAt: now };
    else m = { ...m, bootPending: false };
  }

  // 7. Idle long enough: drain, check again, deallocate.
  const idle = !f.busy && f.known && now - m.idleSince >= t.idleMs;
  if (canAct && view.power === 'running' && idle && m.pending === null) {
    if (!view.draining) {
      view = { ...view, draining: true };
      m = { ...m, drainingSince: now };
    } else {
      const since = m.drainingSince ?? now;
      const checkedAgain = signals.queue !== null && signals.queue.receivedAt > since && now - since >= t.drainCheckMs;
      if (checkedAgain && !backingOff) {
        out.push({ type: 'deallocate', pool, since: now });
        view = { ...view, power: 'stopping' };
        m = { ...m, pending: 'deallocate', pendingSince: now };
      }
    }
  }

  // 8. The idle deadline, while it runs: up, idle and watched, nothing under way.
  const idleClock = canAct && view.power === 'running' && !f.busy && f.known && m.pending === null;
  view = { ...view, idleUntil: idleClock ? m.idleSince + t.idleMs : null };

  // 9. The human line, and the view's timestamp only when something changed.
  const message = describePool({
    provider: state.provider,
    pool,
    capability: m.spec.capability,
    power: view.power,
    draining: view.draining,
    pending: m.pending,
    wanted: f.wanted,
    workerConnected: f.workers.length > 0,
    lastError: m.lastError,
    retryInSecs: backingOff && m.retryAt !== null ? Math.ceil((m.retryAt - m.settledAt) / 1000) : null,
    bootEstimateSecs: t.bootEstimateSecs,
    idleMs: t.idleMs,
  });
  view = { ...view, message };
  return { ...m, view: sameView(view, m0.view) ? m0.view : { ...view, updatedAt: now } };
}

function sameView(a: VmPoolState, b: VmPoolState): boolean {
  return (
    a.power === b.power &&
    a.draining === b.draining &&
    a.startRequestedAt === b.startRequestedAt &&
    a.lastJobEndedAt === b.lastJobEndedAt &&
    (a.lastBootMs ?? null) === (b.lastBootMs ?? null) &&
    (a.idleUntil ?? null) === (b.idleUntil ?? null) &&
    a.message === b.message
  );
}
