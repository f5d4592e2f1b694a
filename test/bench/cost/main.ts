/**
 * `npm run bench -- cost`. Starts its own nats-server (with monitoring on loopback) and MariaDB,
 * runs the hub as a child process (`perry-hub start`, quotas on as in production) and measures,
 * with test/support/build-cost.ts:
 *
 *   1. per build, through the realistic flow (a simulated Rust worker downloads the tarball and
 *      uploads an artifact, a client that does what `perry publish` does follows the job over the
 *      WebSocket and downloads the artifact): NATS messages delivered (`/varz` out_msgs) and
 *      published (in_msgs) with their bytes, MySQL statements (`Questions`), and CPU seconds of
 *      the hub, nats-server and MariaDB (from /proc), given per 1,000 builds; the CPU figure once
 *      for the first builds after the start and once more for the builds after them (warm), each
 *      with where it went per build: user and system time, read and write system calls, and
 *      switches off a core;
 *   2. the idle hub: CPU of the hub and nats-server over a window with no clients at all (with
 *      the kernel's counts per second: its wake-ups show as switches), once as
 *      started (timers that work while nothing happens) and once after the run (which adds the
 *      garbage collector shrinking the heap the run grew).
 *
 * The counts do not depend on the machine's load; the CPU figures do somewhat. The baselines are
 * the original single-process hub's figures measured side by side on this machine class (it
 * cannot run here: it is not part of this repository). Prints figures; exits 0 whatever they are.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateSealKey } from '@perry-hub/runtime';
import {
  countersPer,
  describeCounters,
  measureBuildCost,
  processCounters,
  readVarz,
  type BuildCost,
} from '../../support/build-cost.js';
import {
  hubPorts,
  registerLicense,
  startHub,
  startInfra,
  WORKER_SECRET,
  type Hub,
  type Infra,
} from '../dispatch/stack.js';
import { machine, sleep, table, type Row } from '../dispatch/stats.js';

const BUILDS = Number(process.env['BENCH_COST_BUILDS'] ?? 200);
/**
 * Builds measured again once the first BUILDS are done: the first ones after the start still pay
 * for V8 compiling the hub's code (a tenth of the hub's samples went to its optimizing compiler
 * in a `perf` profile of them), which a hub that has been running for a while no longer does.
 */
const WARM_BUILDS = Number(process.env['BENCH_COST_WARM_BUILDS'] ?? 400);
const CONCURRENCY = 8;
const WARMUP = 4;
const IDLE_SECONDS = Number(process.env['BENCH_IDLE_SECONDS'] ?? 30);
/** Before each idle window: the hub's start, or the run's last downloads and usage, settle. */
const IDLE_SETTLE_MS = 5_000;
/** Free licenses allow 5 submissions an hour: each license submits at most 4 builds. */
const BUILDS_PER_LICENSE = 4;
/** The original hub, measured side by side on this machine class (issue figures). */
const ORIGINAL = { statementsPerBuild: 4.4, cpuPer1000Builds: 6.5, idleCpuPercent: (0.06 / 30) * 100 };

const began = performance.now();
const say = (text: string) =>
  process.stderr.write(`[bench cost ${((performance.now() - began) / 1000).toFixed(0).padStart(3)} s] ${text}\n`);

async function run(dir: string, infra: Infra, hubs: Hub[]): Promise<Row[]> {
  say('starting the hub');
  const hub = await startHub(infra, join(dir, 'hub'), await hubPorts(), generateSealKey(), {
    // Production settings: quotas, rate limits and device binding on. Only the per-address
    // limits are off, since every client of the benchmark comes from one address.
    PERRY_HUB_SELF_HOSTED: 'false',
    PERRY_HUB_REGISTER_MAX_PER_HOUR: '0',
    PERRY_HUB_SUBMISSIONS_PER_ADDRESS_MAX_PER_HOUR: '0',
  });
  hubs.push(hub);
  const licenseKeys: string[] = [];
  for (let i = 0; i < Math.ceil((BUILDS + WARMUP) / BUILDS_PER_LICENSE); i++)
    licenseKeys.push(await registerLicense(hub));
  const warmLicenseKeys: string[] = [];
  for (let i = 0; i < Math.ceil(WARM_BUILDS / BUILDS_PER_LICENSE); i++)
    warmLicenseKeys.push(await registerLicense(hub));
  const pids = { hub: hub.child.pid, 'nats-server': infra.nats.pid, mariadb: infra.db.pid };
  const idlePids = { hub: pids.hub, 'nats-server': pids['nats-server'] };
  /**
   * CPU of the hub and nats-server, with the kernel's counts per second (wake-ups show as
   * switches), and messages delivered, over IDLE_SECONDS without clients.
   */
  const idleWindow = async (when: string) => {
    say(`idle ${when}: ${IDLE_SECONDS} s without clients`);
    await sleep(IDLE_SETTLE_MS);
    const counters0 = Object.values(idlePids).map(processCounters);
    const varz0 = await readVarz(infra.nats.monitorUrl!);
    await sleep(IDLE_SECONDS * 1000);
    const varz1 = await readVarz(infra.nats.monitorUrl!);
    const perSecond = Object.values(idlePids).map((pid, i) =>
      countersPer(counters0[i]!, processCounters(pid), IDLE_SECONDS),
    );
    const each = perSecond.map((c) => (c.userSecs + c.systemSecs) * 100);
    return {
      each,
      perSecond,
      percent: each[0]! + each[1]!,
      messagesPerSec: (varz1.out_msgs - varz0.out_msgs) / IDLE_SECONDS,
    };
  };
  const fresh = await idleWindow('before the run (the hub as started)');
  const runBuilds = async (keys: string[], builds: number, warmup: number) => {
    const cost = await measureBuildCost(
      {
        url: hub.url,
        workerUrl: hub.workerUrl,
        workerSecret: WORKER_SECRET,
        natsMonitorUrl: infra.nats.monitorUrl!,
        mysql: { host: infra.db.host, port: infra.db.port, user: infra.db.user, password: infra.db.password },
        licenseKeys: keys,
        pids,
      },
      { builds, concurrency: CONCURRENCY, warmup },
    );
    if (cost.firstFailure) say(`${cost.failed} builds failed, the first: ${cost.firstFailure}`);
    return cost;
  };
  say(`${BUILDS} builds through the realistic flow, ${CONCURRENCY} at a time`);
  const cost = await runBuilds(licenseKeys, BUILDS, WARMUP);
  if (WARM_BUILDS > 0) say(`${WARM_BUILDS} more builds, the hub warm`);
  const warm = WARM_BUILDS > 0 ? await runBuilds(warmLicenseKeys, WARM_BUILDS, 0) : undefined;
  const after = await idleWindow('after the run');

  const per = cost.perBuild;
  const beyondIdle = per.natsMessages - (after.messagesPerSec * cost.wallMs) / 1000 / cost.builds;
  const cpuRow = (metric: string, run: BuildCost, when: string): Row => {
    const per1000 = Object.values(run.cpuSecsPerBuild).reduce((a, b) => a + b, 0) * 1000;
    const each = Object.entries(run.cpuSecsPerBuild)
      .map(([name, secs]) => `${name} ${(secs * 1000).toFixed(1)}`)
      .join(', ');
    return {
      metric,
      value: per1000,
      baseline: ORIGINAL.cpuPer1000Builds,
      unit: 'CPU-s',
      goal: { text: '<= 12 CPU-s', met: per1000 <= 12 },
      note:
        `hub + nats-server + MariaDB: ${each}; ${when}, ${run.builds} builds in ${(run.wallMs / 1000).toFixed(1)} s, ` +
        `${run.failed} failed; baseline: the original hub (hub + database); per build, ` +
        Object.entries(run.processPerBuild)
          .map(([name, counters]) => `${name}: ${describeCounters(counters)}`)
          .join('; '),
    };
  };
  const runNote =
    `${cost.builds} builds in ${(cost.wallMs / 1000).toFixed(1)} s, ${cost.failed} failed; ` +
    `${per.natsInMessages.toFixed(1)} published (/varz in_msgs), ${(per.natsBytes / 1024).toFixed(0)} KiB delivered per build`;
  return [
    {
      metric: 'NATS messages per build',
      value: per.natsMessages,
      baseline: NaN,
      unit: 'msgs',
      goal: { text: '<= 40', met: per.natsMessages <= 40 },
      note: `delivered to clients (/varz out_msgs), ${beyondIdle.toFixed(1)} beyond the idle hub's rate; ${runNote}`,
    },
    {
      metric: 'MySQL statements per build',
      value: per.mysqlStatements,
      baseline: ORIGINAL.statementsPerBuild,
      unit: 'stmts',
      goal: { text: '<= 10', met: per.mysqlStatements <= 10 },
      note: "SHOW GLOBAL STATUS 'Questions' of the hub's private MariaDB; baseline: the original hub",
    },
    cpuRow('CPU per 1,000 builds, first after start', cost, `the first ${cost.builds} after ${WARMUP} warm-up builds`),
    ...(warm ? [cpuRow('CPU per 1,000 builds, warm', warm, `the next ${warm.builds}`)] : []),
    ...[
      [
        'idle CPU, hub + nats-server, as started',
        fresh,
        'the hub started and given its licenses, before any build',
      ] as const,
      ['idle CPU, hub + nats-server, after the run', after, `${IDLE_SETTLE_MS / 1000} s after the last build`] as const,
    ].map(([metric, idle, when]): Row => ({
      metric,
      value: idle.percent,
      baseline: ORIGINAL.idleCpuPercent,
      unit: '% core',
      goal: { text: '<= 1%', met: idle.percent <= 1 },
      note:
        `${IDLE_SECONDS} s without clients, ${when}: hub ${idle.each[0]!.toFixed(2)}%, nats-server ${idle.each[1]!.toFixed(2)}%; ` +
        `${idle.messagesPerSec.toFixed(1)} NATS messages/s delivered meanwhile; baseline: the original hub; per second, ` +
        `hub: ${describeCounters(idle.perSecond[0]!)}; nats-server: ${describeCounters(idle.perSecond[1]!)}`,
    })),
  ];
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'perry-hub-bench-cost-'));
  const hubs: Hub[] = [];
  let infra: Infra | undefined;
  try {
    say(machine());
    infra = await startInfra(dir);
    const rows = await run(dir, infra, hubs);
    console.log('\ncost benchmark (perry-hub start as a child process, its own nats-server and MariaDB)\n');
    console.log(table(rows));
    console.log(`\n${machine()}`);
  } catch (err) {
    console.error(`cost benchmark failed: ${(err as Error).stack ?? String(err)}`);
    for (const hub of hubs) console.error(`hub output (tail):\n${hub.output().slice(-4_000)}`);
    process.exitCode = 1;
  } finally {
    for (const hub of hubs) await hub.stop();
    await infra?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
