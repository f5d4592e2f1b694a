/**
 * What a process tells its operator over HTTP: `/healthz` (the process is alive and answering),
 * `/readyz` (every service it runs is connected to NATS, has ensured its topology, reaches MySQL
 * if it uses it, and runs its own loops; 503 with the failing checks otherwise) and `/metrics`.
 * One `ProcessOps` per process, shared by its services like the metrics registry.
 *
 * The ingest serves these on its HTTP port; a process without an ingest serves them on
 * `PERRY_HUB_METRICS_PORT` (serveOps) when that is set.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ConfigError } from './config.js';
import { HubMetrics } from './metrics.js';

/** 'ok', or why not. */
export type CheckResult = 'ok' | string;
export type Check = () => CheckResult | Promise<CheckResult>;

const CHECK_TIMEOUT_MS = 2_000;

export interface Readiness {
  readonly ready: boolean;
  readonly checks: Record<string, CheckResult>;
}

export class ProcessOps {
  readonly metrics: HubMetrics;
  readonly startedAt = Date.now();
  readonly #checks = new Map<string, Check>();

  constructor(options: { readonly eventLoopSampleMs?: number } = {}) {
    this.metrics = new HubMetrics(options);
  }

  /** Add a readiness check, named `<service>.<what>`; returns its removal. */
  check(name: string, check: Check): () => void {
    this.#checks.set(name, check);
    return () => this.#checks.delete(name);
  }

  async readiness(): Promise<Readiness> {
    const entries = await Promise.all(
      [...this.#checks].map(async ([name, check]): Promise<[string, CheckResult]> => {
        let timer: NodeJS.Timeout | undefined;
        const timeout = new Promise<string>((resolve) => {
          timer = setTimeout(() => resolve(`no answer within ${CHECK_TIMEOUT_MS} ms`), CHECK_TIMEOUT_MS);
        });
        try {
          return [name, await Promise.race([Promise.resolve().then(check), timeout])];
        } catch (err) {
          return [name, (err as Error).message || String(err)];
        } finally {
          clearTimeout(timer);
        }
      }),
    );
    const checks = Object.fromEntries(entries.sort(([a], [b]) => a.localeCompare(b)));
    return { ready: entries.length > 0 && entries.every(([, r]) => r === 'ok'), checks };
  }

  health(): { status: 'ok'; uptime_secs: number } {
    return { status: 'ok', uptime_secs: Math.floor((Date.now() - this.startedAt) / 1000) };
  }
}

/** A small HTTP server for `/healthz`, `/readyz` and `/metrics` (a process without an ingest). */
export async function serveOps(
  ops: ProcessOps,
  port: number,
  host: string,
): Promise<{ port: number; close(): Promise<void> }> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const send = (status: number, type: string, body: string) => {
      res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
      res.end(body);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'text/plain', 'method not allowed\n');
    if (path === '/healthz') return send(200, 'application/json', JSON.stringify(ops.health()));
    if (path === '/readyz') {
      void ops.readiness().then((r) => send(r.ready ? 200 : 503, 'application/json', JSON.stringify(r)));
      return;
    }
    if (path === '/metrics') {
      void ops.metrics.text().then(
        (text) => send(200, ops.metrics.contentType, text),
        (err: unknown) => send(500, 'text/plain', `${(err as Error).message}\n`),
      );
      return;
    }
    send(404, 'text/plain', 'not found: try /healthz, /readyz or /metrics\n');
  });
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        err.code === 'EADDRINUSE' || err.code === 'EACCES'
          ? new ConfigError([
              `PERRY_HUB_METRICS_PORT: port ${port} on ${host} ${err.code === 'EADDRINUSE' ? 'is already in use' : 'may not be bound'}; choose another`,
            ])
          : err,
      ),
    );
    server.listen(port, host, () => {
      server.removeAllListeners('error');
      resolve();
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
