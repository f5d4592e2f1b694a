/**
 * `npm run bench -- sync`: what `jetstream { sync_interval: always }` costs. The same hub runs
 * twice, on a nats-server with the default (fsync every 2 minutes: an OS crash can lose what was
 * acknowledged since) and with `always` (what the all-in-one uses: every acknowledged write is
 * on disk), measuring dispatch latency at 20 and 100 jobs/s and 1 MiB submissions from 8
 * clients. Each figure is printed with the other mode's as its baseline.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateSealKey } from '@perry-hub/runtime';
import { buildRequest } from '../../support/perry-cli-wire.js';
import { Fleet } from './fleet.js';
import { hubPorts, registerLicense, startHub, startInfra, type Hub, type Infra } from './stack.js';
import { machine, summarize, table, waitUpTo, type Row, type Summary } from './stats.js';
import { dispatchRun, status, type DispatchRun } from './submit.js';

const RUN_SECONDS = 10;
const LICENSES = 20;
const FLEET = { workers: 20, maxConcurrent: 50 };
const UPLOAD_CLIENTS = 8;
const UPLOAD_BYTES = 2 ** 20;

const began = performance.now();
const say = (text: string) =>
  process.stderr.write(`[bench sync ${((performance.now() - began) / 1000).toFixed(0).padStart(3)} s] ${text}\n`);

interface ModeFigures {
  readonly d20: DispatchRun;
  readonly d100: DispatchRun;
  readonly intake: { perSecond: number; latency: Summary; failed: number };
}

/** Closed loop: each client submits a 1 MiB project as the CLI does, again as soon as it is accepted. */
async function intakeRun(hub: Hub, licenses: readonly string[], seconds: number): Promise<ModeFigures['intake']> {
  const tarball = Buffer.concat([Buffer.from([0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 3]), randomBytes(UPLOAD_BYTES)]);
  const manifest = { app_name: 'Bench', bundle_id: 'com.example.bench', version: '1', entry: 'src/main.ts' };
  const deadline = performance.now() + seconds * 1000;
  const latency: number[] = [];
  let failed = 0;
  await Promise.all(
    Array.from({ length: UPLOAD_CLIENTS }, async (_, client) => {
      for (let i = 0; performance.now() < deadline; i++) {
        const licenseKey = licenses[(client + i * UPLOAD_CLIENTS) % licenses.length]!;
        const request = buildRequest({
          manifest: { ...manifest, targets: ['linux'] },
          credentials: {},
          tarball,
          licenseKey,
        });
        const t0 = performance.now();
        const res = await fetch(`${hub.url}/api/v1/build`, { ...request, signal: AbortSignal.timeout(30_000) }).catch(
          () => undefined,
        );
        await res?.text();
        if (res?.status === 200) latency.push(performance.now() - t0);
        else failed++;
      }
    }),
  );
  return { perSecond: latency.length / seconds, latency: summarize(latency), failed };
}

async function measure(dir: string, infra: Infra): Promise<ModeFigures> {
  const hub = await startHub(infra, join(dir, 'hub'), await hubPorts(), generateSealKey());
  const fleet = new Fleet(hub.workerUrl, FLEET.workers, FLEET.maxConcurrent);
  try {
    const licenses: string[] = [];
    for (let i = 0; i < LICENSES; i++) licenses.push(await registerLicense(hub));
    if (!(await waitUpTo(async () => (await status(hub)).connected_workers >= FLEET.workers, 30_000, 100))) {
      throw new Error('the bench workers did not register');
    }
    say('warm-up');
    await dispatchRun(hub, fleet, licenses, 20, 3);
    say('dispatch at 20 and 100 jobs/s');
    const d20 = await dispatchRun(hub, fleet, licenses, 20, RUN_SECONDS);
    const d100 = await dispatchRun(hub, fleet, licenses, 100, RUN_SECONDS);
    say(`1 MiB submissions from ${UPLOAD_CLIENTS} clients`);
    const intake = await intakeRun(hub, licenses, RUN_SECONDS);
    return { d20, d100, intake };
  } finally {
    fleet.close();
    await hub.stop();
  }
}

async function mode(syncAlways: boolean): Promise<ModeFigures> {
  const dir = mkdtempSync(join(tmpdir(), 'perry-hub-bench-sync-'));
  let infra: Infra | undefined;
  try {
    say(`nats-server with sync_interval ${syncAlways ? 'always' : 'default (2 min)'}`);
    infra = await startInfra(dir, { syncAlways });
    return await measure(dir, infra);
  } finally {
    await infra?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

function rows(always: ModeFigures, lazy: ModeFigures): Row[] {
  const note = (r: DispatchRun) =>
    `always: ${r.latency.count} jobs, ${r.missing} never assigned, ${r.failed} failed, load ${r.loadAverage.toFixed(2)} after`;
  return [
    { metric: 'dispatch p50 @ 20 jobs/s', value: always.d20.latency.p50, baseline: lazy.d20.latency.p50, unit: 'ms' },
    {
      metric: 'dispatch p99 @ 20 jobs/s',
      value: always.d20.latency.p99,
      baseline: lazy.d20.latency.p99,
      unit: 'ms',
      note: note(always.d20),
    },
    {
      metric: 'dispatch p50 @ 100 jobs/s',
      value: always.d100.latency.p50,
      baseline: lazy.d100.latency.p50,
      unit: 'ms',
    },
    {
      metric: 'dispatch p99 @ 100 jobs/s',
      value: always.d100.latency.p99,
      baseline: lazy.d100.latency.p99,
      unit: 'ms',
      note: note(always.d100),
    },
    {
      metric: 'POST /api/v1/build p99 @ 100 jobs/s',
      value: always.d100.submit.p99,
      baseline: lazy.d100.submit.p99,
      unit: 'ms',
    },
    {
      metric: `1 MiB submissions/s, ${UPLOAD_CLIENTS} clients`,
      value: always.intake.perSecond,
      baseline: lazy.intake.perSecond,
      unit: '/s',
      note: `failed: always ${always.intake.failed}, default ${lazy.intake.failed}`,
    },
    {
      metric: '1 MiB submission p99',
      value: always.intake.latency.p99,
      baseline: lazy.intake.latency.p99,
      unit: 'ms',
    },
  ];
}

async function main(): Promise<void> {
  try {
    say(machine());
    const lazy = await mode(false);
    const always = await mode(true);
    console.log('\nsync_interval: always (value) against the default (baseline), same hub, same run\n');
    console.log(table(rows(always, lazy)));
    console.log(`\n${machine()}`);
  } catch (err) {
    console.error(`sync benchmark failed: ${(err as Error).stack ?? String(err)}`);
    process.exitCode = 1;
  }
}

await main();
