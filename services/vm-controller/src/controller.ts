/**
 * The I/O around `decide()`: it holds the lease, reads the cloud on a schedule, runs decisions
 * when anything changes (and on a tick, for the clocks), persists and publishes pool state, and
 * carries out the actions. Only the lease holder acts; other instances listen and serve
 * `vm-status` from KV. A new holder starts from the persisted state and a fresh reading of every
 * VM before it decides anything, which is what makes a restart mid-start converge without a
 * second start.
 */
import type { KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/nats-core';
import type { Subjects, VmAlert, VmMetric, VmPoolState } from '@perry-hub/contracts';
import { Lease, type HubMetrics, type Logger } from '@perry-hub/runtime';
import { decide } from './decide.js';
import { backoffMs, initialMemory, settle, type Action, type ControllerState, type Outcome } from './memory.js';
import { ProviderError, summaryOf, type VmProvider } from './providers/index.js';
import type { Settings } from './settings.js';
import { SignalFeed } from './signals.js';
import { PoolStore } from './store.js';

export interface ControllerDeps {
  readonly nc: NatsConnection;
  readonly subjects: Subjects;
  readonly log: Logger;
  readonly instanceId: string;
  readonly provider: VmProvider;
  readonly settings: Settings;
  readonly buckets: { readonly vm: KV; readonly presence: KV; readonly leases: KV };
  readonly reconcileMs: number;
  readonly tickMs: number;
  readonly leaseTtlMs: number;
  readonly now?: () => number;
  readonly metrics?: HubMetrics;
}

export const LEASE_KEY = 'vm-controller';
/** A power reading that takes longer is abandoned (and backs off), so one hung call cannot stop reconciling. */
const STATUS_TIMEOUT_MS = 30_000;
const encoder = new TextEncoder();

export class Controller {
  readonly #d: ControllerDeps;
  readonly #now: () => number;
  readonly store: PoolStore;
  readonly #feed: SignalFeed;
  readonly #lease: Lease;
  /** Present only while we hold the lease and have read every VM once. */
  #state: ControllerState | null = null;
  #term = 0;
  readonly #ops = new Map<string, AbortController>();
  readonly #reading = new Set<string>();
  readonly #nextReadAt = new Map<string, number>();
  readonly #readFailures = new Map<string, number>();
  #timer: NodeJS.Timeout | undefined;
  #deciding = false;
  #again = false;
  #stopped = false;

  constructor(deps: ControllerDeps) {
    this.#d = deps;
    this.#now = deps.now ?? Date.now;
    this.store = new PoolStore(deps.buckets.vm, deps.nc, deps.subjects, deps.log);
    this.#feed = new SignalFeed({
      nc: deps.nc,
      subjects: deps.subjects,
      presence: deps.buckets.presence,
      log: deps.log,
      prewarmTtlMs: deps.settings.timings.prewarmTtlMs,
      capabilities: new Set(deps.settings.pools.map((p) => p.capability)),
      onChange: () => this.schedule(),
      now: this.#now,
    });
    this.#lease = new Lease(deps.buckets.leases, {
      key: LEASE_KEY,
      holder: deps.instanceId,
      ttlMs: deps.leaseTtlMs,
      log: deps.log,
      onAcquired: () => void this.#takeOver(),
      onLost: () => this.#stepDown(),
    });
  }

  /** The pools as this instance decides them; empty unless it holds the lease. */
  poolViews(): readonly VmPoolState[] {
    return this.#state?.pools.map((p) => p.view) ?? [];
  }

  async start(): Promise<void> {
    await this.#feed.start();
    this.#lease.campaign();
    this.#timer = setInterval(() => this.#onTick(), this.#d.tickMs);
  }

  /** Stop acting, abandon operations in flight (the cloud finishes them; the next holder reads the result) and hand the lease over. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    clearInterval(this.#timer);
    this.#stepDown();
    this.#feed.stop();
    await this.#lease.close();
    await this.#d.provider.close();
  }

  get acting(): boolean {
    return this.#state !== null && this.#lease.isHolder();
  }

  async #takeOver(): Promise<void> {
    const term = ++this.#term;
    const now = this.#now();
    const { settings, log } = this.#d;
    this.#feed.forgetCloud();
    const pools = await Promise.all(
      settings.pools.map(async (spec) => initialMemory(spec, await this.store.load(spec.pool).catch(() => null), now)),
    );
    // Decide nothing before every VM has been read once (or its reading has failed).
    if (settings.provider !== 'none') await Promise.all(settings.pools.map((p) => this.#read(p.pool)));
    if (term !== this.#term || !this.#lease.isHolder()) return;
    this.#state = { provider: settings.provider, timings: settings.timings, pools };
    log.info({ pools: pools.map((p) => p.view) }, 'acting as the vm-controller');
    this.schedule();
  }

  #stepDown(): void {
    this.#term += 1;
    this.#state = null;
    for (const op of this.#ops.values()) op.abort();
    this.#ops.clear();
  }

  #onTick(): void {
    if (!this.acting) return;
    const now = this.#now();
    for (const { pool } of this.#d.settings.pools) {
      if (this.#d.settings.provider !== 'none' && now >= (this.#nextReadAt.get(pool) ?? 0)) void this.#read(pool);
    }
    this.schedule();
  }

  /** Run a decision soon; calls while one runs coalesce into one more run. */
  schedule(): void {
    if (this.#deciding) {
      this.#again = true;
      return;
    }
    this.#deciding = true;
    void (async () => {
      try {
        do {
          this.#again = false;
          await this.#decideOnce();
        } while (this.#again && !this.#stopped);
      } catch (err) {
        this.#d.log.error({ err }, 'decision failed');
      } finally {
        this.#deciding = false;
      }
    })();
  }

  async #decideOnce(): Promise<void> {
    const before = this.#state;
    const term = this.#term;
    if (!before || !this.#lease.isHolder()) return;
    const { state, actions } = decide(before, this.#feed.snapshot(), this.#now());
    this.#state = state;
    // Persist before acting: a successor must find `starting` if we die right after the call.
    for (const [i, pool] of state.pools.entries()) {
      if (pool.view !== before.pools[i]?.view) {
        await this.store
          .save(pool.view)
          .catch((err: unknown) => this.#d.log.error({ err }, 'could not save pool state'));
        this.#d.log.info({ state: pool.view }, 'pool state');
      }
    }
    if (term !== this.#term) return; // stepped down meanwhile: the successor decides afresh
    for (const action of actions) this.#execute(action);
  }

  #execute(action: Action): void {
    const { log, nc, subjects } = this.#d;
    switch (action.type) {
      case 'metric': {
        log.info({ metric: action.metric }, 'vm metric');
        const m = action.metric;
        if ('demandToStartMs' in m)
          this.#d.metrics?.vmDemandToStart.observe({ pool: m.pool }, m.demandToStartMs / 1000);
        else this.#d.metrics?.vmBoot.observe({ pool: m.pool }, m.bootMs / 1000);
        nc.publish(subjects.metrics('vm'), encoder.encode(JSON.stringify(action.metric satisfies VmMetric)));
        return;
      }
      case 'alert':
        log.error({ alert: action.alert }, action.alert.message);
        nc.publish(subjects.metrics('vm-alert'), encoder.encode(JSON.stringify(action.alert satisfies VmAlert)));
        return;
      case 'start':
      case 'deallocate':
        this.#operate(action.type, action.pool, action.since, action.type === 'start' && action.replace);
    }
  }

  #operate(op: 'start' | 'deallocate', pool: string, since: number, replace: boolean): void {
    const spec = this.#d.settings.pools.find((p) => p.pool === pool);
    if (!spec) return;
    if (replace) this.#ops.get(pool)?.abort();
    const controller = new AbortController();
    this.#ops.set(pool, controller);
    const term = this.#term;
    this.#d.log.info({ pool, op }, `calling ${op}`);
    // An operation that never answers must not hold the pool forever: it is abandoned after the
    // stuck time, and its failure backs off like any other.
    const signal = AbortSignal.any([controller.signal, AbortSignal.timeout(this.#d.settings.timings.stuckStartMs)]);
    const call = op === 'start' ? this.#d.provider.start(spec, signal) : this.#d.provider.deallocate(spec, signal);
    call.then(
      () => this.#settle(term, controller, { pool, op, since, ok: true }),
      (err: unknown) => {
        const abandoned = err instanceof ProviderError && err.code === 'VM_OPERATION_ABORTED';
        if (abandoned) this.#d.log.info({ pool, op }, `${op} abandoned`);
        else this.#d.log.warn({ err, pool, op }, `${op} failed`);
        this.#settle(term, controller, { pool, op, since, ok: false, error: summaryOf(err) });
      },
    );
  }

  #settle(term: number, controller: AbortController, outcome: Outcome): void {
    if (this.#ops.get(outcome.pool) === controller) this.#ops.delete(outcome.pool);
    if (term !== this.#term || !this.#state) return;
    this.#d.log.info({ pool: outcome.pool, op: outcome.op, ok: outcome.ok }, `${outcome.op} settled`);
    this.#state = settle(this.#state, outcome, this.#now());
    // What the operation left behind is read at once rather than at the next reconcile.
    void this.#read(outcome.pool);
    this.schedule();
  }

  async #read(pool: string): Promise<void> {
    const spec = this.#d.settings.pools.find((p) => p.pool === pool);
    if (!spec || this.#reading.has(pool)) return;
    this.#reading.add(pool);
    const at = this.#now();
    try {
      const power = await this.#d.provider.status(spec, AbortSignal.timeout(STATUS_TIMEOUT_MS));
      this.#readFailures.set(pool, 0);
      this.#nextReadAt.set(pool, this.#now() + this.#d.reconcileMs);
      this.#feed.observe(pool, { power, at });
    } catch (err) {
      // Errors back off: a throttled or failing API is not hammered every reconcile.
      const failures = (this.#readFailures.get(pool) ?? 0) + 1;
      this.#readFailures.set(pool, failures);
      const delay = backoffMs(this.#d.settings.timings, failures);
      this.#nextReadAt.set(pool, this.#now() + delay);
      this.#d.log.warn({ err, pool, failures, retryInMs: delay }, 'could not read the VM power state');
      this.#feed.observe(pool, { power: null, at });
    } finally {
      this.#reading.delete(pool);
    }
  }
}
