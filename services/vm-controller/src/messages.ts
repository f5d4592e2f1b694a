/**
 * The human line of a pool's state. The scheduler relays it to waiting CLIs as `queue_update`
 * and `/api/v1/status` shows it, so it must say what is happening and how long it may take, and
 * must not change while nothing changes (every change is published). It never carries raw
 * provider error text: that goes to the log, the public status only gets a short reason.
 */
import type { VmPowerState, VmProviderKind } from '@perry-hub/contracts';
import type { Operation } from './memory.js';

const LABELS: Readonly<Record<string, string>> = {
  'windows-sign': 'Windows signing VM',
  'macos-sign': 'macOS signing VM',
  'ios-sign': 'iOS signing VM',
};

export function poolLabel(pool: string): string {
  return LABELS[pool] ?? `${pool} VM`;
}

export interface MessageFacts {
  readonly provider: VmProviderKind;
  readonly pool: string;
  readonly capability: string;
  readonly power: VmPowerState;
  readonly draining: boolean;
  readonly pending: Operation | null;
  /** Work (or a pre-warm hint) wants the pool. */
  readonly wanted: boolean;
  readonly workerConnected: boolean;
  readonly lastError: { readonly op: Operation; readonly reason: string } | null;
  /** Seconds until the next attempt after a failure; null when not backing off. */
  readonly retryInSecs: number | null;
  readonly bootEstimateSecs: number;
  readonly idleMs: number;
}

/** "30 min" or "45 s": idle times are minutes in production and milliseconds in tests. */
export function duration(ms: number): string {
  return ms >= 60_000 ? `${Math.round(ms / 60_000)} min` : `${Math.max(1, Math.round(ms / 1000))} s`;
}

export function describePool(f: MessageFacts): string {
  const vm = poolLabel(f.pool);
  const The = `The ${vm}`;
  if (f.provider === 'none') {
    if (f.workerConnected) return `A ${f.capability} worker is connected; automatic VM start is disabled`;
    if (f.wanted) return `No ${f.capability} worker is connected and automatic VM start is disabled`;
    return `Automatic VM start is disabled; jobs for ${f.capability} wait until a worker connects`;
  }
  if (f.retryInSecs !== null && f.lastError !== null && f.pending === null) {
    return `Could not ${f.lastError.op} the ${vm} (${f.lastError.reason}); retrying in ${f.retryInSecs} s`;
  }
  switch (f.power) {
    case 'starting':
      return `Starting the ${vm} (takes about ${f.bootEstimateSecs} s)`;
    case 'running':
      if (f.draining) return `${The} has been idle for ${duration(f.idleMs)} and is about to be deallocated`;
      if (f.workerConnected) return `${The} is running`;
      return `${The} is running; waiting for its ${f.capability} worker to connect`;
    case 'stopping':
      if (f.wanted) return `${The} is being deallocated; it starts again as soon as that has finished`;
      return `Deallocating the ${vm} (idle for ${duration(f.idleMs)})`;
    case 'deallocated':
      if (f.workerConnected) return `${The} is deallocated; another ${f.capability} worker is connected`;
      return `${The} is deallocated; it starts when a ${f.capability} job waits`;
    default:
      return `The state of the ${vm} is not known yet`;
  }
}
