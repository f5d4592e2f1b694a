/**
 * What the controller knows about each pool, and the pure transitions that are not decisions:
 * the state after a restart and the state after a cloud operation settles. `decide()` (decide.ts)
 * is the rest. Only `view` (the contracts' VmPoolState) is persisted and published; the other
 * fields are the acting instance's memory and start afresh when another instance takes over.
 */
import type {
  QueueDepth,
  PrewarmSignal,
  VmAlert,
  VmMetric,
  VmPoolState,
  VmPowerState,
  VmProviderKind,
  WorkerPresence,
} from '@perry-hub/contracts';
import type { PoolSpec, Timings } from './settings.js';

export type Operation = 'start' | 'deallocate';

export interface PoolMemory {
  readonly spec: PoolSpec;
  /** Persisted in KV and published on every change. */
  readonly view: VmPoolState;
  /** The cloud operation in flight, if any: at most one per pool. */
  readonly pending: Operation | null;
  /** When the pending operation was issued; it identifies the operation's outcome. */
  readonly pendingSince: number | null;
  /** Consecutive failed operations, for the backoff. */
  readonly failures: number;
  readonly retryAt: number | null;
  /** The last failed operation and a short reason safe to show users. */
  readonly lastError: { readonly op: Operation; readonly reason: string } | null;
  /** When `view.draining` was set: the second check must see a queue depth newer than this. */
  readonly drainingSince: number | null;
  /** A start was issued and its first worker has not connected yet (for the boot metric). */
  readonly bootPending: boolean;
  /** Whether the capability had work at the last decision. */
  readonly busy: boolean;
  /** The idle clock: time counts from here while nothing needs the pool. */
  readonly idleSince: number;
  /** First moment work waited with no worker to take it (for the demand-to-start metric). */
  readonly demandSince: number | null;
  /** Cloud observations sent before this (the last settled operation) are stale. */
  readonly settledAt: number;
}

export interface ControllerState {
  readonly provider: VmProviderKind;
  readonly timings: Timings;
  readonly pools: readonly PoolMemory[];
}

/** A power reading from the provider; `power: null` when the status call failed. */
export interface CloudObservation {
  readonly power: VmPowerState | null;
  /** When the status request was sent. */
  readonly at: number;
}

export interface Signals {
  /** The scheduler's last queue depth and when it arrived; null before the first. */
  readonly queue: { readonly depth: QueueDepth; readonly receivedAt: number } | null;
  readonly workers: readonly WorkerPresence[];
  /** Pre-warm hints whose job has not ended. */
  readonly prewarms: readonly PrewarmSignal[];
  /** Last observation per pool name. */
  readonly cloud: Readonly<Record<string, CloudObservation | undefined>>;
}

export type Action =
  /** `replace`: a start of this pool is still in flight (stuck); abandon it first. */
  | { readonly type: 'start'; readonly pool: string; readonly since: number; readonly replace: boolean }
  | { readonly type: 'deallocate'; readonly pool: string; readonly since: number }
  | { readonly type: 'alert'; readonly alert: VmAlert }
  | { readonly type: 'metric'; readonly metric: VmMetric };

export type Outcome =
  | { readonly pool: string; readonly op: Operation; readonly since: number; readonly ok: true }
  | {
      readonly pool: string;
      readonly op: Operation;
      readonly since: number;
      readonly ok: false;
      readonly error: string;
    };

export function backoffMs(timings: Timings, failures: number): number {
  if (failures <= 0) return 0;
  return Math.min(timings.backoffMaxMs, timings.backoffMs * 2 ** Math.min(failures - 1, 30));
}

/**
 * The memory of an instance that has just taken over: the persisted view if any. The idle clock
 * restarts now (the previous holder may have seen work we did not), and a draining pool is
 * checked again from scratch.
 */
export function initialMemory(spec: PoolSpec, persisted: VmPoolState | null, now: number): PoolMemory {
  const view: VmPoolState = persisted ?? {
    pool: spec.pool,
    capability: spec.capability,
    power: 'unknown',
    draining: false,
    startRequestedAt: null,
    lastJobEndedAt: null,
    updatedAt: now,
    message: '',
  };
  return {
    spec,
    view: { ...view, pool: spec.pool, capability: spec.capability },
    pending: null,
    pendingSince: null,
    failures: 0,
    retryAt: null,
    lastError: null,
    drainingSince: view.draining ? now : null,
    bootPending: view.power === 'starting' && view.startRequestedAt !== null,
    busy: false,
    idleSince: now,
    demandSince: null,
    settledAt: 0,
  };
}

/** Fold the outcome of a cloud operation into the state. Outcomes of abandoned operations are ignored. */
export function settle(state: ControllerState, outcome: Outcome, now: number): ControllerState {
  const pools = state.pools.map((m): PoolMemory => {
    if (m.spec.pool !== outcome.pool || m.pending !== outcome.op || m.pendingSince !== outcome.since) return m;
    const base = { ...m, pending: null, pendingSince: null, settledAt: now };
    if (outcome.ok) return { ...base, failures: 0, retryAt: null, lastError: null };
    const failures = m.failures + 1;
    // After a failed call the power is unknown until the next reading (requested at once).
    return {
      ...base,
      failures,
      retryAt: now + backoffMs(state.timings, failures),
      lastError: { op: outcome.op, reason: outcome.error },
      bootPending: false,
      view: {
        ...m.view,
        power: 'unknown',
        startRequestedAt: outcome.op === 'start' ? null : m.view.startRequestedAt,
      },
    };
  });
  return { ...state, pools };
}
