// A run of many builds on the hub spread out: three nats-server nodes started from
// infra/nats/cluster.conf (TLS on clients and routes, the hub's NKEY users), every stream and
// bucket at three replicas, every service as two separate processes, workers on both gateways and
// CLIs (real-CLI behaviour: reconnecting watchers, artifact downloads) on both ingests and both
// gateways. While it runs, `inject` does harm. Judged by an external history: every acknowledged
// submission completes exactly once, every CLI sees its `complete` and downloads its artifact, no
// duplicate `artifact_ready`, usage equals the acknowledged count.
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { SERVICE_NAMES } from '@perry-hub/contracts';
import { getFreePort } from '@perry-hub/localstack';
import {
  createClusterNetwork,
  expect,
  startIsolatedMariaDb,
  startIsolatedNatsCluster,
  type IsolatedMariaDb,
  type IsolatedNatsCluster,
} from '@perry-hub/testkit';
import { expectEveryJobCompletedOnce, startWorkers } from '../fault/harness.js';
import { ensureBuilt } from '../support/hub-process.js';
import { perryPublish, sniffDownload } from '../support/perry-cli.js';
import { ProcessHub } from '../support/process-hub.js';
import { expectedArtifact } from '../support/rust-worker-jobs.js';
import { WorkerHistory } from '../support/rust-workers.js';
import { CREDENTIALS, MANIFEST, tarball } from '../support/test-hub.js';

const INFRA = resolve(import.meta.dirname, '../../infra');
const CONCURRENT_CLIS = 10;

export interface ClusterRun {
  readonly cluster: IsolatedNatsCluster;
  readonly hub: ProcessHub;
  /** The current MariaDB (replaced by its restart). */
  mariadb: IsolatedMariaDb;
  /** What was done, in order, with the seconds since the builds began, for the printed figures. */
  readonly faults: string[];
  /** Records a fault (or its end) in `faults`. */
  note(what: string): void;
}

export const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Runs `builds` builds on a fresh three-node cluster while `inject` does harm, then checks the
 * verdict and prints the figures (acknowledged, completed, lost, re-runs, longest dispatch pause).
 */
export async function runClusterBuilds(options: {
  readonly builds: number;
  readonly prefix: string;
  /** Nodes in network namespaces of their own, so that `cluster.partition()` works. */
  readonly namespaces?: boolean;
  readonly inject: (run: ClusterRun) => Promise<void>;
}): Promise<void> {
  ensureBuilt();
  const tls = mkdtempSync(join(tmpdir(), 'perry-hub-cluster-tls-'));
  const caFile = join(tls, 'ca.pem');
  const network = options.namespaces ? createClusterNetwork(3, await getFreePort()) : undefined;
  // The certificate is valid for the namespaces' addresses too.
  const addresses = network ? [0, 1, 2].flatMap((i) => [network.clientHost(i), network.routeHost(i)]) : [];
  execFileSync(join(INFRA, 'tls', 'make-local-ca.sh'), [tls, ...addresses]);
  const text = readFileSync(join(INFRA, 'nats', 'cluster.conf'), 'utf8');
  /** Each node's monitoring address, by node index (its configuration is rendered from `text`). */
  const monitors: string[] = [];
  const cluster = await startIsolatedNatsCluster(3, {
    tls: { caFile },
    ...(network ? { network } : {}),
    template: (node) => {
      monitors[Number(/-n(\d+)$/.exec(node.serverName)![1])] = `http://${node.clientHost}:${node.monitorPort}`;
      return {
        text,
        env: {
          NATS_SERVER_NAME: node.serverName,
          NATS_LISTEN: `${node.clientHost}:${node.clientPort}`,
          NATS_MONITOR: `${node.clientHost}:${node.monitorPort}`,
          NATS_STORE_DIR: node.storeDir,
          NATS_CLUSTER_LISTEN: `${node.routeHost}:${node.routePort}`,
          NATS_ROUTE_1: node.allRoutes[0]!,
          NATS_ROUTE_2: node.allRoutes[1]!,
          NATS_ROUTE_3: node.allRoutes[2]!,
          NATS_TLS_CA: caFile,
          NATS_TLS_CERT: join(tls, 'server.pem'),
          NATS_TLS_KEY: join(tls, 'server-key.pem'),
        },
      };
    },
  });
  const mariadb = await startIsolatedMariaDb({ durable: true });
  const database = {
    host: '127.0.0.1',
    port: mariadb.port,
    user: 'root',
    password: '',
    database: 'perry_hub_cluster',
  };

  // Two instances of each service; the second ingest and gateway on ports of their own.
  const second = { http: await getFreePort(), ws: await getFreePort() };
  const groups: Record<string, string[] | { services: string[]; env: Record<string, string> }> = {};
  for (const s of SERVICE_NAMES) {
    groups[`${s}-a`] = [s];
    groups[`${s}-b`] =
      s === 'ingest'
        ? { services: [s], env: { PERRY_HUB_HTTP_PORT: String(second.http) } }
        : s === 'worker-gateway'
          ? { services: [s], env: { PERRY_HUB_WS_PORT: String(second.ws) } }
          : [s];
  }
  /** The NATS nodes' logs, copied into a new directory that outlives the test, whose path is returned. */
  const keepNatsLogs = async (): Promise<string> => {
    const logs = mkdtempSync(join(tmpdir(), 'perry-hub-cluster-logs-'));
    cluster.logFiles.forEach((file, i) => existsSync(file) && copyFileSync(file, join(logs, `nats-${i + 1}.log`)));
    // What each node knows of JetStream's placement (peers, reserved storage, streams) and its routes.
    for (const [i, monitor] of monitors.entries()) {
      for (const page of ['jsz?accounts=true&streams=true&config=true', 'varz', 'routez']) {
        const res = await fetch(`${monitor}/${page}`, { signal: AbortSignal.timeout(2_000) }).catch(() => undefined);
        if (res?.ok) writeFileSync(join(logs, `nats-${i + 1}-${page.split('?')[0]}.json`), await res.text());
      }
    }
    return logs;
  };
  const hub = await ProcessHub.start(
    {
      natsUrl: cluster.urls,
      natsCaFile: caFile,
      // Twelve processes starting at once on two cores.
      upTimeoutMs: 180_000,
      prefix: options.prefix,
      database,
      env: {
        PERRY_HUB_JS_REPLICAS: '3',
        PERRY_HUB_SCHEDULER_LEASE_MS: '1500',
        PERRY_HUB_INSTANCE_TTL_MS: '2000',
        // Kept in memory and written out when something is lost.
        PERRY_HUB_LOG_LEVEL: 'info',
      },
    },
    groups,
  ).catch(async (err: unknown) => {
    // A process that could not start says why; the cluster's side of it is in the nodes' logs.
    console.log(`the hub did not start; the NATS nodes' logs are in ${await keepNatsLogs()}`);
    throw err;
  });
  const began = Date.now();
  const faults: string[] = [];
  const run: ClusterRun = {
    cluster,
    hub,
    mariadb,
    faults,
    note: (what) => faults.push(`${((Date.now() - began) / 1000).toFixed(1)} s ${what}`),
  };
  const ingests = [hub.url, `http://127.0.0.1:${second.http}`];
  const gateways = [hub.workerUrl, `ws://127.0.0.1:${second.ws}`];

  const history = new WorkerHistory();
  const workers = await startWorkers(hub, 4, {
    gateways,
    maxConcurrent: 3,
    buildMs: 100,
    buildSpreadMs: 300,
    reconnectDelayMs: 300,
    history,
  });

  const outcomes: { jobId?: string; ok: boolean; why: string }[] = [];
  let reruns = 0;
  let linkRetries = 0;
  let next = 0;
  let running = true;
  const publish = (i: number, input: Buffer) =>
    perryPublish({
      server: ingests[i % 2]!,
      // Watched through either gateway: each relays every job's events.
      wsServer: gateways[(i >> 1) % 2]!.replace(/^ws/, 'http'),
      manifest: { ...MANIFEST, targets: ['linux'] },
      credentials: CREDENTIALS,
      tarball: input,
      apiToken: hub.apiToken,
      // The real CLI's backoff (2n s, at most 30 s, 60 tries), ten times faster.
      reconnectDelayMs: (n) => Math.min(200 * n, 3_000),
      timeoutMs: 240_000,
    });
  type Run = Awaited<ReturnType<typeof publish>>;
  const cli = async () => {
    while (next < options.builds) {
      const i = next++;
      const input = tarball(`cluster-${i}`);
      // The user runs the CLI again when it failed before it could follow the build: the
      // submission was cut (a killed ingest), refused while MariaDB was down, or its first
      // WebSocket connect failed (a restarting gateway; the real CLI does not retry that one).
      // A re-run of an accepted submission is the same job, charged once. The user waits a little
      // longer each time (a service restarting on a busy machine can take ten seconds and more).
      let result: Run | undefined;
      let firstJob: string | undefined;
      for (let attempt = 1; attempt <= 8; attempt++) {
        result = await publish(i + attempt - 1, input).catch(() => undefined);
        firstJob ??= result?.jobId;
        // Refused (`request-failed`: nothing reached an ingest) is the killed ingest's case too.
        const cut = result === undefined || result.outcome === 'request-failed' || result.httpStatus >= 500;
        const lostFirstConnect = result?.outcome === 'disconnected' && result.connections === 0;
        if (!cut && !lostFirstConnect) break;
        reruns++;
        await wait(1_000 * attempt);
      }
      if (result?.jobId === undefined) {
        outcomes.push({ ok: false, why: `not acknowledged: ${result?.reason ?? 'connection failed'}` });
        continue;
      }
      if (firstJob !== result.jobId) {
        outcomes.push({ jobId: result.jobId, ok: false, why: `re-run got job ${result.jobId}, not ${firstJob}` });
        continue;
      }
      hub.acknowledged.add(result.jobId);
      const expected = expectedArtifact('linux', 'linux', input);
      let bytes = result.artifact?.bytes;
      // A download cut by a kill: the user fetches the same link again.
      const link = result.messages.findLast((m) => m.type === 'artifact_ready');
      if (result.outcome === 'complete' && !bytes && link?.type === 'artifact_ready') {
        linkRetries++;
        for (let tries = 0; tries < 10 && !bytes; tries++) {
          await wait(2_000);
          const res = await fetch(link.download_url).catch(() => undefined);
          if (res?.status === 200) bytes = sniffDownload(Buffer.from(await res.arrayBuffer()));
        }
      }
      const ok = result.outcome === 'complete' && bytes?.equals(expected) === true;
      outcomes.push({ jobId: result.jobId, ok, why: ok ? '' : `${result.outcome}: ${result.reason}` });
    }
  };

  // The longest time no build started while builds were waiting, and when it began.
  const longest = { ms: 0, fromS: 0 };
  const watchingPauses = (async () => {
    let last = Date.now();
    let seen = 0;
    while (running) {
      await wait(100);
      if (history.started.length > seen) {
        seen = history.started.length;
        last = Date.now();
      } else if (
        (next < options.builds || hub.acknowledged.size > history.completes.length) &&
        Date.now() - last > longest.ms
      ) {
        Object.assign(longest, { ms: Date.now() - last, fromS: (last - began) / 1000 });
      }
    }
  })();

  try {
    await Promise.all([...Array.from({ length: CONCURRENT_CLIS }, cli), options.inject(run)]);
    running = false;
    await watchingPauses;
    const failed = outcomes.filter((o) => !o.ok);
    const completed = outcomes.filter((o) => o.ok).length;
    console.log(
      `faults: ${run.faults.join('; ')}\n` +
        `CLIs ${outcomes.length}: acknowledged ${hub.acknowledged.size}, completed (saw complete, downloaded) ${completed}, ` +
        `lost ${failed.filter((o) => o.jobId !== undefined).length}, not acknowledged ${outcomes.filter((o) => o.jobId === undefined).length}; ` +
        `CLIs re-run by their user ${reruns}, links fetched again after a cut download ${linkRetries}; ` +
        `longest pause in dispatch ${longest.ms} ms (from ${longest.fromS.toFixed(1)} s)`,
    );
    const refusals = new Map<string, number>();
    for (const o of outcomes.filter((o) => o.jobId === undefined))
      refusals.set(o.why.slice(0, 200), (refusals.get(o.why.slice(0, 200)) ?? 0) + 1);
    if (refusals.size > 0) console.log(`not acknowledged, by reason: ${JSON.stringify([...refusals])}`);
    // Every process's whole output, for whoever investigates a failed verdict.
    const keepLogs = async () => {
      const logs = await keepNatsLogs();
      for (const p of hub.processes) writeFileSync(join(logs, `${p.name}.log`), p.output());
      console.log(`the services' output is in ${logs}`);
      for (const p of hub.processes) {
        const errors = p.current
          .output()
          .split('\n')
          .filter((l) => /"level":(50|60)/.test(l));
        if (errors.length > 0) console.log(`${p.name}:\n${errors.slice(-5).join('\n').slice(0, 3_000)}`);
      }
    };
    if (failed.length > 0) await keepLogs();
    expect(failed.filter((o) => o.jobId !== undefined).map((o) => `${o.jobId}: ${o.why}`)).toEqual([]);
    // Refusals are allowed while MariaDB or a quorum is down, but they are few.
    expect(hub.acknowledged.size).toBeGreaterThanOrEqual(options.builds * 0.9);
    await hub.reconnect();
    // Duplicates of artifact_ready and usage against the acknowledged count.
    await expectEveryJobCompletedOnce(hub, 120_000).catch(async (err: unknown) => {
      await keepLogs();
      throw err;
    });
  } finally {
    running = false;
    for (const w of workers) await w.stop();
    await hub.stop();
    rmSync(tls, { recursive: true, force: true });
  }
}
