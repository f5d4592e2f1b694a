/**
 * Probes of a service's connections for readiness and metrics: whether NATS is connected right
 * now (its status events, no polling), and how long queries wait for a MySQL pool connection.
 */
import type { NatsConnection } from '@nats-io/nats-core';
import type { Pool } from '@perry-hub/db';
import type { HubMetrics } from './metrics.js';
import type { CheckResult } from './ops.js';

export function watchNatsStatus(nc: NatsConnection, onReconnect: () => void): { state(): CheckResult } {
  let connected = true;
  let since = 0;
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === 'disconnect') {
        if (connected) since = Date.now();
        connected = false;
      } else if (s.type === 'reconnect') {
        connected = true;
        onReconnect();
      }
    }
  })().catch(() => undefined);
  return {
    state: () => {
      if (nc.isClosed()) return 'connection closed';
      if (!connected) return `disconnected for ${Math.round((Date.now() - since) / 1000)} s, reconnecting`;
      return 'ok';
    },
  };
}

interface CorePool {
  getConnection(cb: (err: unknown, conn: unknown) => void): void;
  on(event: 'enqueue', listener: () => void): void;
}

/**
 * mysql2's pool takes every query's connection through `getConnection` (the promise pool wraps a
 * callback pool): timing it measures the wait for a free connection, 'enqueue' counts the waits.
 */
export function instrumentPool(pool: Pool, metrics: HubMetrics, service: string): void {
  const core = (pool as unknown as { pool?: CorePool }).pool;
  if (!core || typeof core.getConnection !== 'function') return;
  const original = core.getConnection.bind(core);
  const labels = { service };
  core.getConnection = (cb) => {
    const end = metrics.mysqlPoolWait.startTimer(labels);
    original((err, conn) => {
      end();
      cb(err, conn);
    });
  };
  core.on('enqueue', () => metrics.mysqlPoolQueued.inc(labels));
}
