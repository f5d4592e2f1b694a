/**
 * Pool state on the bus: KV `<p>-vm` under the pool name (read by the scheduler for `draining`,
 * by every vm-controller instance for `vm-status`, and by the next lease holder after a
 * restart), and a copy on `<p>.vm.<pool>.state` on every change.
 */
import type { KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/nats-core';
import { VmPoolState, type Subjects } from '@perry-hub/contracts';
import { jsonOf, problems, type Logger } from '@perry-hub/runtime';
import { describePool } from './messages.js';
import type { PoolSpec, Settings } from './settings.js';

export class PoolStore {
  constructor(
    private readonly kv: KV,
    private readonly nc: NatsConnection,
    private readonly subjects: Subjects,
    private readonly log: Logger,
  ) {}

  async load(pool: string): Promise<VmPoolState | null> {
    const entry = await this.kv.get(pool);
    if (!entry || entry.operation !== 'PUT') return null;
    const value = jsonOf(entry);
    const found = problems(VmPoolState, value);
    if (found.length > 0) {
      this.log.warn({ pool, problems: found }, 'ignored an invalid stored pool state');
      return null;
    }
    return value as VmPoolState;
  }

  /** Persist first, then announce: whoever hears the announcement can read the same state. */
  async save(state: VmPoolState): Promise<void> {
    const body = JSON.stringify(state);
    await this.kv.put(state.pool, body);
    this.nc.publish(this.subjects.vmState(state.pool), body);
  }

  /** Every configured pool, with a placeholder for one no controller has acted on yet. */
  async readAll(settings: Settings): Promise<VmPoolState[]> {
    return Promise.all(settings.pools.map(async (spec) => (await this.load(spec.pool)) ?? placeholder(spec, settings)));
  }
}

function placeholder(spec: PoolSpec, settings: Settings): VmPoolState {
  return {
    pool: spec.pool,
    capability: spec.capability,
    power: 'unknown',
    draining: false,
    startRequestedAt: null,
    lastJobEndedAt: null,
    updatedAt: 0,
    message: describePool({
      provider: settings.provider,
      pool: spec.pool,
      capability: spec.capability,
      power: 'unknown',
      draining: false,
      pending: null,
      wanted: false,
      workerConnected: false,
      lastError: null,
      retryInSecs: null,
      bootEstimateSecs: settings.timings.bootEstimateSecs,
      idleMs: settings.timings.idleMs,
    }),
  };
}
