/**
 * The admin endpoints behind `GET /api/v1/admin/workers` and `POST /api/v1/admin/update-perry`.
 * Any instance may answer: the workers come from the shared presence copy, and `update_perry`
 * goes to each idle worker through its command subject, which reaches whichever gateway holds
 * its socket.
 */
import { adminWorkersEndpoint, updatePerryEndpoint, type AdminWorker, type WorkerPresence } from '@perry-hub/contracts';
import { commandWorker, handle, type BoundEndpoint } from '@perry-hub/runtime';
import type { GatewayContext } from './context.js';
import type { PresenceView } from './presence.js';
import type { ExpectedVersion } from './settings.js';

const NOTIFY_TIMEOUT_MS = 2_000;

export interface AdminDeps {
  readonly ctx: GatewayContext;
  readonly view: PresenceView;
  readonly expected: ExpectedVersion;
}

export function adminEndpoints({ ctx, view, expected }: AdminDeps): BoundEndpoint[] {
  return [
    handle(adminWorkersEndpoint, () => ({ expectedVersion: expected.current, workers: listWorkers(view) })),
    handle(updatePerryEndpoint, async (request) => {
      if (request.expectedVersion !== undefined) await expected.set(request.expectedVersion);
      const idle = view.live().filter((w) => w.activeJobs === 0);
      const notified = await Promise.all(idle.map((w) => notify(ctx, w.workerId)));
      ctx.log.info(
        { expectedVersion: expected.current, notified: notified.filter(Boolean).length },
        'update_perry sent',
      );
      return {
        expectedVersion: expected.current,
        workersNotified: notified.filter(Boolean).length,
        workers: listWorkers(view),
      };
    }),
  ];
}

/** In connection order, as the original listed its worker slots. */
function listWorkers(view: PresenceView): AdminWorker[] {
  return view
    .live()
    .sort((a, b) => a.connectedAt - b.connectedAt)
    .map((w: WorkerPresence) => ({
      workerId: w.workerId,
      name: w.name,
      perryVersion: w.perryVersion,
      capabilities: w.capabilities,
      busy: w.activeJobs > 0,
      activeJobs: w.activeJobs,
      maxConcurrent: w.maxConcurrent,
      connectedAt: w.connectedAt,
      gatewayId: w.gatewayId,
      jobs: w.jobs ?? [],
    }));
}

/** True when the worker's gateway wrote `update_perry` to its socket (it refuses busy workers). */
async function notify(ctx: GatewayContext, workerId: string): Promise<boolean> {
  const delivery = await commandWorker(ctx.nc, ctx.subjects, workerId, { kind: 'update_perry' }, NOTIFY_TIMEOUT_MS);
  return delivery === 'delivered';
}
