/**
 * What one build costs the hub, in the counts that do not depend on how busy the machine is:
 * NATS messages and bytes (the nats-server's monitoring `/varz` counters), MySQL statements
 * (`Questions` of `SHOW GLOBAL STATUS`) and, beside them, CPU seconds of the hub, nats-server
 * and MariaDB (from /proc). The builds go through the realistic flow of the real clients: a
 * simulated Rust Linux worker downloads the tarball and uploads an artifact, and a client that
 * does what `perry publish` does submits, follows the job over the WebSocket and downloads the
 * artifact.
 *
 * The nats-server and MariaDB must be private to the hub being measured (nothing else talks to
 * them during the window), and the nats-server must serve monitoring (localstack `monitorPort`).
 *
 *   const cost = await measureBuildCost(target, { builds: 20 });
 *   cost.perBuild.natsMessages, cost.perBuild.mysqlStatements
 *
 * NATS messages are `out_msgs`: every message the server delivered to a client (one per
 * subscriber it reached: a request and its reply are two, a JetStream publish is its ack plus one
 * delivery per consumer). That is what the server and the clients spend their time writing and
 * reading; `in_msgs` misses what the server originates itself (JetStream API answers, consumer
 * deliveries, advisories). Both are reported.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import type { NatsConnection } from '@nats-io/nats-core';
import { createConnection, type Connection } from 'mysql2/promise';
import { perryPublish } from './perry-cli.js';
import { linuxWorker, type SimulatedWorker } from './rust-workers.js';

/** The CLI's manifest and credentials for a Linux build (test-hub.ts has the same; it needs vitest). */
const MANIFEST = { app_name: 'CostApp', bundle_id: 'com.example.cost', version: '1', entry: 'src/main.ts', icon: null };
const CREDENTIALS = { apple_team_id: null, apple_signing_identity: null, apple_key_id: null };

export interface CostTarget {
  /** The hub's HTTP origin (`--server` of the CLI). */
  readonly url: string;
  /** The gateway's WebSocket URL for workers. */
  readonly workerUrl: string;
  readonly workerSecret: string;
  /** `http://127.0.0.1:<port>` of the hub's private nats-server's monitoring. */
  readonly natsMonitorUrl: string;
  /** An administrative login to the hub's private MariaDB (its global status is read). */
  readonly mysql: { host: string; port: number; user: string; password: string };
  /** Licenses to submit with, round robin. */
  readonly licenseKeys: readonly string[];
  /** Processes whose CPU time is reported, by name (e.g. hub, nats-server, mariadb). */
  readonly pids?: Readonly<Record<string, number | undefined>>;
}

export interface CostOptions {
  /** Builds measured (after the warm-up ones). Default 20. */
  readonly builds?: number;
  /** Builds in flight at once (and the worker's slots). Default 4. */
  readonly concurrency?: number;
  /** Builds run before the window opens (first-use costs: consumers, statements prepared). Default 2. */
  readonly warmup?: number;
  /** Tarball size; the Object Store moves it in 128 KiB chunks. Default 256 KiB. */
  readonly tarballBytes?: number;
  /** Log lines each build sends. Default 3 (the simulated worker's default). */
  readonly logLines?: number;
  /** Counts every message by subject shape (a `>` subscription of this connection); not in the totals. */
  readonly tap?: NatsConnection;
  /** Collects MariaDB's general log during the window to count statements by shape. */
  readonly statementBreakdown?: boolean;
  /** How long after the last build the window stays open for trailing work. Default 1 s. */
  readonly settleMs?: number;
  /**
   * Measure the idle hub's message rate over this long before the builds (0: not measured), so
   * that the per-build figure can be given without the timers' share of the window, which grows
   * with the window's length (a loaded machine runs the same builds slower). Default 0.
   */
  readonly idleMs?: number;
}

export interface Varz {
  readonly in_msgs: number;
  readonly out_msgs: number;
  readonly in_bytes: number;
  readonly out_bytes: number;
}

export interface BuildCost {
  readonly builds: number;
  readonly failed: number;
  readonly firstFailure?: string;
  readonly wallMs: number;
  /** Messages per second the idle hub delivered before the builds (when `idleMs` was set). */
  readonly idleMessagesPerSec?: number;
  readonly totals: {
    natsInMsgs: number;
    natsOutMsgs: number;
    natsInBytes: number;
    natsOutBytes: number;
    mysqlStatements: number;
    /** Of the statements, executions of prepared ones (`Com_stmt_execute`): no SQL parsed. */
    mysqlExecutedPrepared: number;
    /** Statements prepared (`Com_stmt_prepare`), not among the statements run. */
    mysqlPrepares: number;
  };
  readonly perBuild: {
    natsMessages: number;
    /** `natsMessages` minus what the idle hub delivers over as long a time (when `idleMs` was set). */
    natsMessagesBeyondIdle?: number;
    natsInMessages: number;
    natsBytes: number;
    mysqlStatements: number;
    mysqlExecutedPrepared: number;
  };
  /** CPU seconds per build by process name. */
  readonly cpuSecsPerBuild: Record<string, number>;
  /** The kernel's counts per build by process name (`cpuSecsPerBuild` split, system calls, switches). */
  readonly processPerBuild: Record<string, ProcessCounters>;
  /** Messages per build by subject shape, when `tap` was given, most first. */
  readonly subjects?: [string, number][];
  /** Messages per build each connection published (in) and was delivered (out), by connection name. */
  readonly connections?: [string, { in: number; out: number }][];
  /** Statements per build by shape, when `statementBreakdown` was set, most first. */
  readonly statements?: [string, number][];
}

interface Connz {
  connections: { cid: number; name?: string; in_msgs: number; out_msgs: number }[];
}

async function readConnz(monitorUrl: string): Promise<Connz> {
  const res = await fetch(`${monitorUrl}/connz?limit=100000&state=any`);
  if (!res.ok) throw new Error(`${monitorUrl}/connz answered ${res.status}`);
  return (await res.json()) as Connz;
}

export async function readVarz(monitorUrl: string): Promise<Varz> {
  const res = await fetch(`${monitorUrl}/varz`);
  if (!res.ok) throw new Error(`${monitorUrl}/varz answered ${res.status}`);
  return (await res.json()) as Varz;
}

/** CPU seconds a process has used (user + system), 0 once it is gone. */
export function cpuSecs(pid: number | undefined): number {
  const { userSecs, systemSecs } = processCounters(pid);
  return userSecs + systemSecs;
}

/**
 * What the kernel has counted for a process, all its threads together (zeros once it is gone, or
 * where /proc does not say): CPU seconds in the process's own code and in the kernel on its
 * behalf, the read and write system calls it made (`syscr`/`syscw` of /proc/<pid>/io: `read`,
 * `write` and their vector forms, on sockets and files alike; not `recv` and `send`, which MariaDB
 * uses for its clients, so its figures are its files' only), and how often its threads were
 * switched off a core, having blocked (voluntary) or been preempted by a thread woken meanwhile
 * (involuntary), counted over the threads alive now. On loopback each write to a socket wakes its
 * reader: these counts say where a process's CPU goes when its profile says "writes".
 */
export interface ProcessCounters {
  readonly userSecs: number;
  readonly systemSecs: number;
  readonly readCalls: number;
  readonly writeCalls: number;
  readonly voluntarySwitches: number;
  readonly involuntarySwitches: number;
}

const NO_COUNTERS: ProcessCounters = {
  userSecs: 0,
  systemSecs: 0,
  readCalls: 0,
  writeCalls: 0,
  voluntarySwitches: 0,
  involuntarySwitches: 0,
};

/** Clock ticks per second of /proc/<pid>/stat's times (USER_HZ: 100 on Linux). */
const TICKS_PER_SEC = 100;

export function processCounters(pid: number | undefined): ProcessCounters {
  if (pid === undefined) return NO_COUNTERS;
  const read = (file: string) => {
    try {
      return readFileSync(`/proc/${pid}/${file}`, 'utf8');
    } catch {
      return '';
    }
  };
  const stat = read('stat').split(') ')[1]?.split(' ');
  if (!stat) return NO_COUNTERS;
  const field = (text: string, name: string) => Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(text)?.[1] ?? 0);
  const io = read('io');
  let voluntarySwitches = 0;
  let involuntarySwitches = 0;
  let threads: string[] = [];
  try {
    threads = readdirSync(`/proc/${pid}/task`);
  } catch {
    // gone meanwhile: no switches counted
  }
  for (const tid of threads) {
    const status = read(`task/${tid}/status`);
    voluntarySwitches += field(status, 'voluntary_ctxt_switches');
    involuntarySwitches += field(status, 'nonvoluntary_ctxt_switches');
  }
  return {
    userSecs: Number(stat[11]) / TICKS_PER_SEC,
    systemSecs: Number(stat[12]) / TICKS_PER_SEC,
    readCalls: field(io, 'syscr'),
    writeCalls: field(io, 'syscw'),
    voluntarySwitches,
    involuntarySwitches,
  };
}

/** `after - before`, divided by `per`. */
export function countersPer(before: ProcessCounters, after: ProcessCounters, per: number): ProcessCounters {
  const each = (key: keyof ProcessCounters) => (after[key] - before[key]) / per;
  return {
    userSecs: each('userSecs'),
    systemSecs: each('systemSecs'),
    readCalls: each('readCalls'),
    writeCalls: each('writeCalls'),
    voluntarySwitches: each('voluntarySwitches'),
    involuntarySwitches: each('involuntarySwitches'),
  };
}

/** One process's counters per build, as the benchmarks print them. */
export function describeCounters(c: ProcessCounters): string {
  return (
    `user ${(c.userSecs * 1000).toFixed(1)} ms, system ${(c.systemSecs * 1000).toFixed(1)} ms, ` +
    `${c.readCalls.toFixed(1)} reads, ${c.writeCalls.toFixed(1)} writes, ` +
    `${(c.voluntarySwitches + c.involuntarySwitches).toFixed(1)} switches (${c.involuntarySwitches.toFixed(1)} preempted)`
  );
}

/** Statements run (`Questions`), and of them executions of prepared ones, and the prepares. */
async function statementCounts(db: Connection): Promise<{ run: number; executed: number; prepared: number }> {
  const [rows] = await db.query(
    "SHOW GLOBAL STATUS WHERE Variable_name IN ('Questions', 'Com_stmt_execute', 'Com_stmt_prepare')",
  );
  const value = new Map(
    (rows as { Variable_name: string; Value: string }[]).map((r) => [r.Variable_name, Number(r.Value)]),
  );
  return {
    run: value.get('Questions')!,
    executed: value.get('Com_stmt_execute')!,
    prepared: value.get('Com_stmt_prepare')!,
  };
}

/** Subject shapes: ids, tokens, object names and inbox suffixes become `*`; stream and bucket names stay. */
export function subjectShape(subject: string): string {
  const tokens = subject.split('.');
  if (tokens[0] === '_INBOX') return tokens.slice(0, 3).concat('*').join('.');
  return tokens
    .map((t) =>
      /^[0-9a-f]{8}-[0-9a-f]{4}-/i.test(t) ||
      /^[0-9a-f]{32}$/.test(t) ||
      /^[A-Za-z0-9]{20,}_\d+$/.test(t) ||
      /^\d+$/.test(t) ||
      /^[A-Za-z0-9]{22}$/.test(t) ||
      /=$/.test(t) ||
      t.length > 40
        ? '*'
        : t.replace(/-[0-9a-f]{8}$/, '-*'),
    )
    .join('.');
}

/** Statement shapes: literals become `?`. */
export function statementShape(sql: string): string {
  return sql
    .replace(/\s+/g, ' ')
    .replace(/'(?:[^'\\]|\\.)*'/g, '?')
    .replace(/\b0x[0-9a-f]+\b/gi, '?')
    .replace(/\b\d+(\.\d+)?\b/g, '?')
    .replace(/\(\?(, ?\?)+\)/g, '(?…)')
    .trim()
    .slice(0, 160);
}

const sorted = (m: Map<string, number>, builds: number): [string, number][] =>
  [...m.entries()].sort((a, b) => b[1] - a[1]).map(([k, v]) => [k, Math.round((v / builds) * 100) / 100]);

export async function measureBuildCost(target: CostTarget, options: CostOptions = {}): Promise<BuildCost> {
  const builds = options.builds ?? 20;
  const concurrency = options.concurrency ?? 4;
  const warmup = options.warmup ?? 2;
  const tarballBytes = options.tarballBytes ?? 256 * 1024;
  const worker: SimulatedWorker = linuxWorker({
    url: target.workerUrl,
    secret: target.workerSecret,
    name: `cost-linux-${randomBytes(3).toString('hex')}`,
    maxConcurrent: concurrency,
    reconnectDelayMs: 200,
    script: () => ({ durationMs: 5, logLines: options.logLines ?? 3 }),
  });
  const db = await createConnection({ ...target.mysql });
  let failed = 0;
  let firstFailure: string | undefined;
  let n = 0;
  const one = async () => {
    const i = n++;
    // A different project each time: an identical submission would be a retry of the same build.
    const tarball = Buffer.concat([
      Buffer.from([0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0, 0x03]),
      createHash('sha256').update(`cost ${i} ${Date.now()}`).digest(),
      randomBytes(Math.max(0, tarballBytes - 42)),
    ]);
    const result = await perryPublish({
      server: target.url,
      manifest: { ...MANIFEST, version: String(i), targets: ['linux'] },
      credentials: CREDENTIALS,
      tarball,
      licenseKey: target.licenseKeys[i % target.licenseKeys.length]!,
      timeoutMs: 60_000,
    });
    if (result.exitCode !== 0 || !result.artifact) {
      failed++;
      firstFailure ??= `${result.outcome}: ${result.reason}`;
    }
  };
  const run = async (count: number) => {
    let left = count;
    await Promise.all(
      Array.from({ length: Math.min(concurrency, count) }, async () => {
        while (left-- > 0) await one();
      }),
    );
  };
  const subjects = new Map<string, number>();
  let tapping = false;
  let tappedBytes = 0;
  /** Every delivery to the tap (they are in out_msgs too), also outside the window. */
  let tapAll = 0;
  const tapSub = options.tap?.subscribe('>', {
    callback: (_err, msg) => {
      tapAll++;
      if (!tapping) return;
      const shape = subjectShape(msg.subject);
      subjects.set(shape, (subjects.get(shape) ?? 0) + 1);
      tappedBytes += msg.data.length + (msg.headers ? msg.headers.toString().length : 0);
    },
  });
  try {
    await worker.connected();
    await run(warmup);
    failed = 0;
    // Own statements between the two readings: the second SHOW (calibrated, not assumed).
    const q0 = (await statementCounts(db)).run;
    const own = (await statementCounts(db)).run - q0;
    let idleMessagesPerSec: number | undefined;
    if (options.idleMs) {
      // The warm-up builds' trailing work (downloads spent, usage counted) first.
      await new Promise((r) => setTimeout(r, options.settleMs ?? 1_000));
      await options.tap?.flush();
      const [before, tapBefore] = [await readVarz(target.natsMonitorUrl), tapAll];
      const t = performance.now();
      await new Promise((r) => setTimeout(r, options.idleMs));
      const after = await readVarz(target.natsMonitorUrl);
      await options.tap?.flush();
      const delivered = after.out_msgs - before.out_msgs - (tapAll - tapBefore);
      idleMessagesPerSec = delivered / ((performance.now() - t) / 1000);
    }
    if (options.statementBreakdown) {
      await db.query('TRUNCATE mysql.general_log');
      await db.query("SET GLOBAL log_output = 'TABLE'");
      await db.query('SET GLOBAL general_log = 1');
    }
    await options.tap?.flush();
    tapping = true;
    const counters0 = Object.entries(target.pids ?? {}).map(([name, pid]) => [name, processCounters(pid)] as const);
    const c0 = options.tap ? await readConnz(target.natsMonitorUrl) : undefined;
    const v0 = await readVarz(target.natsMonitorUrl);
    const s0 = await statementCounts(db);
    const t0 = performance.now();
    await run(builds);
    await new Promise((r) => setTimeout(r, options.settleMs ?? 1_000));
    const wallMs = performance.now() - t0;
    const s1 = await statementCounts(db);
    const v1 = await readVarz(target.natsMonitorUrl);
    const c1 = options.tap ? await readConnz(target.natsMonitorUrl) : undefined;
    const processPerBuild = Object.fromEntries(
      counters0.map(([name, before]) => [name, countersPer(before, processCounters(target.pids?.[name]), builds)]),
    );
    const cpuSecsPerBuild = Object.fromEntries(
      Object.entries(processPerBuild).map(([name, c]) => [name, c.userSecs + c.systemSecs]),
    );
    await options.tap?.flush();
    tapping = false;
    const tapped = [...subjects.values()].reduce((a, b) => a + b, 0);
    let statements: [string, number][] | undefined;
    if (options.statementBreakdown) {
      await db.query('SET GLOBAL general_log = 0');
      const [rows] = await db.query(
        "SELECT command_type, CONVERT(argument USING utf8mb4) AS argument FROM mysql.general_log WHERE command_type NOT IN ('Connect', 'Quit')",
      );
      const shapes = new Map<string, number>();
      for (const row of rows as { command_type: string; argument: string }[]) {
        if (/general_log|SHOW GLOBAL STATUS/.test(row.argument)) continue;
        const key = `${row.command_type}: ${statementShape(row.argument)}`;
        shapes.set(key, (shapes.get(key) ?? 0) + 1);
      }
      statements = sorted(shapes, builds);
    }
    let connections: [string, { in: number; out: number }][] | undefined;
    if (c0 && c1) {
      const before = new Map(c0.connections.map((c) => [c.cid, c]));
      const byName = new Map<string, { in: number; out: number }>();
      for (const c of c1.connections) {
        const b = before.get(c.cid);
        const name = c.name ?? `cid ${c.cid}`;
        const e = byName.get(name) ?? { in: 0, out: 0 };
        e.in += (c.in_msgs - (b?.in_msgs ?? 0)) / builds;
        e.out += (c.out_msgs - (b?.out_msgs ?? 0)) / builds;
        byName.set(name, e);
      }
      connections = [...byName.entries()].sort((a, b) => b[1].out - a[1].out);
    }
    // The tap's own deliveries are in out_msgs/out_bytes: take them out.
    const totals = {
      natsInMsgs: v1.in_msgs - v0.in_msgs,
      natsOutMsgs: v1.out_msgs - v0.out_msgs - tapped,
      natsInBytes: v1.in_bytes - v0.in_bytes,
      natsOutBytes: v1.out_bytes - v0.out_bytes - tappedBytes,
      mysqlStatements: s1.run - s0.run - own,
      mysqlExecutedPrepared: s1.executed - s0.executed,
      mysqlPrepares: s1.prepared - s0.prepared,
    };
    return {
      builds,
      failed,
      ...(firstFailure ? { firstFailure } : {}),
      wallMs,
      totals,
      ...(idleMessagesPerSec === undefined ? {} : { idleMessagesPerSec }),
      perBuild: {
        natsMessages: totals.natsOutMsgs / builds,
        ...(idleMessagesPerSec === undefined
          ? {}
          : { natsMessagesBeyondIdle: (totals.natsOutMsgs - (idleMessagesPerSec * wallMs) / 1000) / builds }),
        natsInMessages: totals.natsInMsgs / builds,
        natsBytes: totals.natsOutBytes / builds,
        mysqlStatements: totals.mysqlStatements / builds,
        mysqlExecutedPrepared: totals.mysqlExecutedPrepared / builds,
      },
      cpuSecsPerBuild,
      processPerBuild,
      ...(options.tap ? { subjects: sorted(subjects, builds) } : {}),
      ...(statements ? { statements } : {}),
      ...(connections ? { connections } : {}),
    };
  } finally {
    tapSub?.unsubscribe();
    await worker.stop();
    await db.end();
  }
}
