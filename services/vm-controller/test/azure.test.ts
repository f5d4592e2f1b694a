// The vm-controller as a real process, with the real Azure SDK (@azure/identity + @azure/arm-compute)
// talking https to a local fake of the token authority and ARM compute, and a real nats-server.
// The scheduler and the worker-gateway are played by synthetic publishers of their messages.
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { test, serviceEnv } from '@perry-hub/testkit';
import { openBus, sleep, until, type Bus } from './support/bus.js';
import { startFakeAzure, SUBSCRIPTION, TENANT, type FakeAzure } from './support/fake-azure.js';
import { buildController, spawnController, type ControllerProcess } from './support/processes.js';

const WIN = 'windows-sign';
const VM = 'sign-rg/win-signer';
const IDLE_MS = 2_000;
/** Longer than idle time + drain check + a reconcile: long enough for a wrong deallocation to show. */
const HOLD_MS = IDLE_MS + 1_200;

function controllerEnv(natsUrl: string, prefix: string, fake: FakeAzure): Record<string, string> {
  return {
    NODE_EXTRA_CA_CERTS: fake.caFile,
    ...serviceEnv({ natsUrl, prefix }),
    PERRY_HUB_LOG_LEVEL: 'info',
    AZURE_TENANT_ID: TENANT,
    AZURE_CLIENT_ID: '00000000-0000-4000-8000-0000000000cc',
    AZURE_CLIENT_SECRET: 'test-secret',
    AZURE_SUBSCRIPTION_ID: SUBSCRIPTION,
    AZURE_VM_RESOURCE_GROUP: 'sign-rg',
    AZURE_VM_NAME: 'win-signer',
    AZURE_AUTHORITY_HOST: fake.url,
    AZURE_RESOURCE_MANAGER_URL: fake.url,
    PERRY_HUB_VM_AZURE_POLL_MS: '100',
    PERRY_HUB_VM_AZURE_RETRY_DELAY_MS: '200',
    PERRY_HUB_VM_IDLE_MS: String(IDLE_MS),
    PERRY_HUB_VM_RECONCILE_MS: '400',
    PERRY_HUB_VM_TICK_MS: '100',
    PERRY_HUB_VM_DRAIN_CHECK_MS: '300',
    PERRY_HUB_VM_QUEUE_STALE_MS: '3000',
    PERRY_HUB_VM_BACKOFF_MS: '300',
    PERRY_HUB_VM_LEASE_TTL_MS: '1500',
    PERRY_HUB_SHUTDOWN_GRACE_MS: '2000',
  };
}

const processes: ControllerProcess[] = [];
function spawnTracked(env: Record<string, string>): ControllerProcess {
  const p = spawnController(env);
  processes.push(p);
  return p;
}

/** On failure, the controllers' logs are what explains it. */
async function explained<T>(body: () => Promise<T>): Promise<T> {
  try {
    return await body();
  } catch (err) {
    for (const p of processes) process.stderr.write(`--- controller ${p.pid} ---\n${p.output().slice(-20_000)}\n`);
    throw err;
  }
}

async function acting(bus: Bus): Promise<void> {
  await until('the controller to publish the pool state', async () => (await bus.vm.get(WIN))?.operation === 'PUT');
}

beforeAll(() => buildController(), 120_000);
afterAll(async () => {
  await Promise.all(processes.map((p) => p.kill9()));
});

describe('vm-controller with the Azure SDK against a fake ARM', () => {
  test('starts once on demand, lets the jobs dispatch, deallocates once when idle, retrying 429 and 500', async ({
    natsUrl,
    prefix,
  }) => {
    const fake = await startFakeAzure({ bootMs: 1_500, stopMs: 400 });
    const bus = await openBus(natsUrl, prefix);
    try {
      await explained(async () => {
        // The first power reading meets a 500, which the SDK retries.
        fake.failNext('instanceView', [500]);
        const controller = spawnTracked(controllerEnv(natsUrl, prefix, fake));
        await acting(bus);
        expect(fake.attempts('instanceView').some((r) => r.status === 500)).toBe(true);

        // A windows job is re-queued as windows-sign: one start call.
        const demandAt = Date.now();
        bus.depth(WIN, { queued: 1, oldestQueuedAt: demandAt });
        const [firstStart] = await until(
          'a start call',
          () => fake.accepted('start').length > 0 && fake.accepted('start'),
        );
        const metric = await until('the demand-to-start metric', () =>
          bus.metrics.find((m) => typeof m.value['demandToStartMs'] === 'number'),
        );
        console.log(
          `demand to start call: ${firstStart!.at - demandAt} ms at the fake ARM; ` +
            `controller metric demandToStartMs=${String(metric.value['demandToStartMs'])}`,
        );
        await until('a starting state for waiting CLIs', () =>
          bus.states.find(
            (s) => s.state.power === 'starting' && /Starting the Windows signing VM/.test(s.state.message),
          ),
        );

        // A second job while the VM starts: no second start.
        bus.depth(WIN, { queued: 2 });
        await sleep(800);
        expect(fake.attempts('start')).toHaveLength(1);

        // The VM boots, its worker connects; while jobs wait, are assigned, run: no deallocation.
        await until('the VM to run', () => fake.power(VM) === 'running');
        await bus.workerUp('win-1', WIN);
        await until('the boot metric', () => bus.metrics.find((m) => typeof m.value['bootMs'] === 'number'));
        await until('a running state', () => bus.states.find((s) => s.state.power === 'running'));
        await sleep(HOLD_MS);
        bus.depth(WIN, { queued: 0, assigned: 2 });
        await sleep(HOLD_MS);
        bus.depth(WIN, { assigned: 0, running: 2 });
        await bus.workerUp('win-1', WIN, 2);
        await sleep(HOLD_MS);
        expect(fake.attempts('deallocate')).toHaveLength(0);
        expect(bus.states.some((s) => s.state.draining)).toBe(false);

        // The jobs end. After the idle time: draining, then exactly one deallocation, which meets
        // a 429 (Retry-After: 1) and a 500 first.
        fake.failNext('deallocate', [429, 500]);
        bus.depth(WIN, { running: 0 });
        await bus.workerUp('win-1', WIN, 0);
        bus.jobDone('job-1');
        bus.jobDone('job-2');
        const endedAt = Date.now();
        await until('a deallocation', () => fake.accepted('deallocate').length > 0, 15_000);
        const attempts = fake.attempts('deallocate');
        expect(attempts.map((r) => r.status)).toEqual([429, 500, 202]);
        expect(attempts[0]!.at - endedAt).toBeGreaterThanOrEqual(IDLE_MS);
        expect(attempts[1]!.at - attempts[0]!.at).toBeGreaterThanOrEqual(900); // Retry-After: 1
        expect(attempts[2]!.at - attempts[1]!.at).toBeGreaterThanOrEqual(100); // exponential backoff
        const drained = bus.states.find((s) => s.state.draining);
        expect(drained?.at).toBeLessThan(attempts[0]!.at);

        await until('the VM deallocated', () =>
          bus.states.find((s) => s.state.power === 'deallocated' && !s.state.draining && s.at > attempts[2]!.at),
        );
        await bus.workerDown('win-1');
        await sleep(1_000);
        expect(fake.accepted('deallocate')).toHaveLength(1);
        expect(fake.attempts('start')).toHaveLength(1);
        expect(fake.accepted('token').length).toBeGreaterThanOrEqual(1);

        await controller.stop();
        expect(await controller.exited).toBe(0);
      });
    } finally {
      await bus.close();
      await fake.close();
    }
  });

  test('a controller killed mid-start converges after restart without a second start', async ({ natsUrl, prefix }) => {
    const fake = await startFakeAzure({ bootMs: 4_000, stopMs: 300 });
    const bus = await openBus(natsUrl, prefix);
    try {
      await explained(async () => {
        const env = controllerEnv(natsUrl, prefix, fake);
        const first = spawnTracked(env);
        await acting(bus);
        // A second instance waits on the lease and does nothing meanwhile.
        const second = spawnTracked(env);
        await sleep(500);

        bus.depth(WIN, { queued: 1 });
        await until('a start call', () => fake.accepted('start').length > 0);
        await first.kill9();
        const killedAt = Date.now();

        // The survivor takes the lease over once it expires, reads the VM (starting), and waits.
        await until('the VM to run', () => fake.power(VM) === 'running', 10_000);
        await until('the survivor to see it running', () =>
          bus.states.find((s) => s.at > killedAt && s.state.power === 'running'),
        );
        await bus.workerUp('win-1', WIN);
        bus.depth(WIN, { queued: 0, running: 1 });
        await bus.workerUp('win-1', WIN, 1);
        await sleep(500);
        bus.depth(WIN, { running: 0 });
        await bus.workerUp('win-1', WIN, 0);
        bus.jobDone('job-1');
        await until('the idle deallocation by the survivor', () => fake.accepted('deallocate').length > 0, 15_000);
        expect(fake.attempts('start')).toHaveLength(1);
        expect(fake.accepted('deallocate')).toHaveLength(1);

        await second.stop();
      });
    } finally {
      await bus.close();
      await fake.close();
    }
  });
});
