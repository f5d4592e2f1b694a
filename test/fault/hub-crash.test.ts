// kill -9 of the whole all-in-one (its nats-server and MariaDB stop with it), twice within a
// minute, while builds run on workers that reconnect: the builds running at each crash go on
// (claimed back by their reconnected workers) or are re-dispatched within seconds of the
// restart, new builds dispatch at once, /status counts no ghosts, attempts rise only with real
// re-dispatches, and every acknowledged build completes once.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RowDataPacket } from '@perry-hub/db';
import { jetstream } from '@nats-io/jetstream';
import { DEFAULT_SUBJECT_PREFIX, subjects, topologyNames } from '@perry-hub/contracts';
import { ensureBuilt } from '../support/hub-process.js';
import { ProcessHub } from '../support/process-hub.js';
import { WorkerHistory, linuxWorker, type SimulatedWorker } from '../support/rust-workers.js';
import { WORKER_SECRET } from '../support/test-hub.js';
import { expectEveryJobCompletedOnce } from './harness.js';
import { whenTrue } from '@perry-hub/testkit';

const WORKERS = 4;
const SLOTS_PER_WORKER = 4;
const BUILD_MS = 6_000;
const KILLS = 2;

let dataDir: string;
beforeAll(() => {
  ensureBuilt();
  dataDir = mkdtempSync(join(tmpdir(), 'perry-hub-crash-'));
});
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

interface Row {
  status: string;
  attempt: number;
  retries: number;
  workerId: string | null;
}

async function rows(hub: ProcessHub): Promise<Map<string, Row>> {
  const [r] = await hub.db.query<RowDataPacket[]>('SELECT id, status, attempt, retries, worker_id FROM builds');
  return new Map(
    r.map((x) => [
      String(x['id']),
      {
        status: String(x['status']),
        attempt: Number(x['attempt']),
        retries: Number(x['retries']),
        workerId: (x['worker_id'] as string | null) ?? null,
      },
    ]),
  );
}

async function connectedWorkers(hub: ProcessHub): Promise<number | undefined> {
  try {
    const res = await fetch(`${hub.url}/api/v1/status`);
    if (res.status !== 200) return undefined;
    return ((await res.json()) as { connected_workers: number }).connected_workers;
  } catch {
    return undefined;
  }
}

describe('fault: the whole hub killed', () => {
  it(
    'two kill -9 of the all-in-one while builds run: builds go on fast, no ghosts, attempts honest, each build once',
    { timeout: 400_000 },
    async () => {
      // No retries at all: a crash re-dispatch must not count as one, or the re-dispatched builds fail.
      // A build its worker does not claim back (its build ended while the hub was down) waits
      // for it this long before another worker gets it.
      const hub = await ProcessHub.startAllInOne(dataDir, {
        PERRY_HUB_MAX_RETRIES: '0',
        PERRY_HUB_RECLAIM_WAIT_MS: '5000',
      });
      const history = new WorkerHistory();
      const workers: SimulatedWorker[] = [];
      try {
        for (let i = 0; i < WORKERS; i++) {
          const w = linuxWorker({
            url: hub.workerUrl,
            secret: WORKER_SECRET,
            name: `linux-${i}`,
            maxConcurrent: SLOTS_PER_WORKER,
            history,
            reconnectDelayMs: 200,
            script: () => ({ durationMs: BUILD_MS, logLines: 2 }),
          });
          workers.push(w);
          await w.connected();
        }
        const redispatchedAtCrash = new Map<string, number>();
        for (let kill = 1; kill <= KILLS; kill++) {
          for (let i = 0; i < 6; i++) await hub.submit(kill * 100 + i);
          await whenTrue(
            'six builds running',
            async () => [...(await rows(hub)).values()].filter((r) => r.status === 'running').length >= 6,
            20_000,
          );
          await new Promise((r) => setTimeout(r, 1_000)); // the workers are building now
          const before = await rows(hub);
          const running = [...before]
            .filter(([, r]) => r.status === 'running')
            .map(([id, r]) => [id, r.attempt, r.workerId] as const);
          for (const [id] of running) redispatchedAtCrash.set(id, (redispatchedAtCrash.get(id) ?? 0) + 1);

          const proc = hub.process('hub');
          await proc.crashAndRestart();
          const restartedAt = Date.now();
          await proc.up();
          const upAt = await whenTrue(
            '/status answers',
            async () => (await connectedWorkers(hub)) !== undefined,
            30_000,
          );
          await hub.reconnect();
          // New builds right away, while the crashed ones come back.
          const fresh: string[] = [];
          for (let i = 0; i < 2; i++) {
            const id = await hub.submit(kill * 100 + 50 + i);
            if (id) fresh.push(id);
          }
          expect(fresh).toHaveLength(2);

          const ghosts: number[] = [];
          const sampling = (async () => {
            const end = Date.now() + 12_000;
            while (Date.now() < end) {
              const n = await connectedWorkers(hub);
              if (n !== undefined) ghosts.push(n);
              await new Promise((r) => setTimeout(r, 200));
            }
          })();
          // Both watched from now: the new builds need not wait for the crashed ones.
          const freshDispatched = whenTrue(
            'new builds dispatched',
            async () => {
              const now = await rows(hub);
              return fresh.every((id) => ['running', 'completed'].includes(now.get(id)?.status ?? ''));
            },
            30_000,
          );
          freshDispatched.catch(() => undefined);
          const redispatchedAt = await whenTrue(
            'running builds going on again',
            async () => {
              const now = await rows(hub);
              // Completed, claimed back by its reconnected worker (same attempt, its new
              // connection), or handed to a worker anew.
              return running.every(([id, attempt, workerId]) => {
                const r = now.get(id);
                const again = r?.status === 'running' && (r.attempt > attempt || r.workerId !== workerId);
                return r !== undefined && (r.status === 'completed' || again);
              });
            },
            30_000,
          ).catch(async (err: unknown) => {
            const now = await hub.statuses();
            console.log(running.map(([id, attempt]) => `${id} was ${attempt}: ${now.get(id)}`));
            const first = running.find(([id]) => now.get(id)?.startsWith('failed'))?.[0] ?? running[0]![0];
            const c = await jetstream(hub.nc).consumers.get(topologyNames(DEFAULT_SUBJECT_PREFIX).eventsStream, {
              filter_subjects: [subjects(DEFAULT_SUBJECT_PREFIX).jobEvents(first)],
            });
            for (;;) {
              const m = await c.next({ expires: 1000 });
              if (!m) break;
              console.log(new TextDecoder().decode(m.data).slice(0, 200));
            }
            console.log(proc.current.output().slice(-6_000));
            throw err;
          });
          const freshAt = await freshDispatched;
          await sampling;
          console.log(
            `kill ${kill}: ${running.length} builds running at the crash; up ${upAt - restartedAt} ms after the restart; ` +
              `going on again ${redispatchedAt - upAt} ms after /status answered (${redispatchedAt - restartedAt} ms after the restart); ` +
              `new builds dispatched ${freshAt - upAt} ms after /status answered; /status connected_workers seen: ${[...new Set(ghosts)].join(', ')}`,
          );
          expect(redispatchedAt - upAt).toBeLessThan(10_000);
          expect(freshAt - upAt).toBeLessThan(2_000);
          expect(Math.max(...ghosts)).toBeLessThanOrEqual(WORKERS);
          expect(ghosts.at(-1)).toBe(WORKERS);
        }

        await expectEveryJobCompletedOnce(hub, 120_000);
        const after = await rows(hub);
        const dishonest = [...hub.acknowledged]
          .map((id) => [id, after.get(id)?.attempt ?? 0, 1 + (redispatchedAtCrash.get(id) ?? 0)] as const)
          .filter(([, attempt, most]) => attempt > most);
        const raised = [...hub.acknowledged].filter((id) => (after.get(id)?.attempt ?? 0) > 1).length;
        console.log(
          `${raised} builds ran more than once, ${redispatchedAtCrash.size} were running at a crash; ` +
            `retries used: ${[...after.values()].reduce((n, r) => n + r.retries, 0)}`,
        );
        expect(dishonest.map(([id, attempt, most]) => `${id}: attempt ${attempt}, at most ${most}`)).toEqual([]);
      } finally {
        for (const w of workers) await w.stop();
        await hub.stop();
      }
    },
  );
});
