// The hub spread out: three nats-server nodes started from infra/nats/cluster.conf (TLS on
// clients and routes, the hub's NKEY users), every stream and bucket at three replicas, every
// service as two separate processes, workers on both gateways and CLIs (real-CLI behaviour:
// reconnecting watchers, artifact downloads) on both ingests and both gateways. During 300 builds:
// kill -9 of one NATS node and its restart, kill -9 of one instance of each service in turn, and
// kill -9 of MariaDB and its restart. Judged by an external history: every acknowledged
// submission completes exactly once, every CLI sees its `complete` and downloads its artifact, no
// duplicate `artifact_ready`, usage equals the acknowledged count.
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { SERVICE_NAMES } from '@perry-hub/contracts';
import { getFreePort } from '@perry-hub/localstack';
import { describe, expect, startIsolatedMariaDb, startIsolatedNatsCluster, test } from '@perry-hub/testkit';
import { ensureBuilt } from '../support/hub-process.js';
import { perryPublish, sniffDownload } from '../support/perry-cli.js';
import { ProcessHub } from '../support/process-hub.js';
import { expectedArtifact } from '../support/rust-worker-jobs.js';
import { WorkerHistory, linuxWorker, type SimulatedWorker } from '../support/rust-workers.js';
import { CREDENTIALS, MANIFEST, WORKER_SECRET, tarball } from '../support/test-hub.js';
import { expectEveryJobCompletedOnce } from '../fault/harness.js';
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';

const BUILDS = 300;
// Fourteen processes and 300 builds take about four minutes on an idle two-core machine, longer
// under load: a longer command than npm test's default run (see infra/README.md).
const ENABLED = process.env['PERRY_HUB_CLUSTER_FAULTS'] === '1';
const CONCURRENT_CLIS = 10;
const INFRA = resolve(import.meta.dirname, '../../infra');

describe.skipIf(!ENABLED)('cluster: faults (PERRY_HUB_CLUSTER_FAULTS=1)', () => {
  test(
    `${BUILDS} builds on a three-node cluster, two instances of each service: kill -9 of a NATS node, of each service, of MariaDB`,
    { timeout: 600_000 },
    async ({ prefix }) => {
      ensureBuilt();
      const tls = mkdtempSync(join(tmpdir(), 'perry-hub-cluster-tls-'));
      execFileSync(join(INFRA, 'tls', 'make-local-ca.sh'), [tls]);
      const caFile = join(tls, 'ca.pem');
      const text = readFileSync(join(INFRA, 'nats', 'cluster.conf'), 'utf8');
      const cluster = await startIsolatedNatsCluster(3, {
        tls: { caFile },
        template: (node) => ({
          text,
          env: {
            NATS_SERVER_NAME: node.serverName,
            NATS_LISTEN: `127.0.0.1:${node.clientPort}`,
            NATS_MONITOR: `127.0.0.1:${node.monitorPort}`,
            NATS_STORE_DIR: node.storeDir,
            NATS_CLUSTER_LISTEN: `127.0.0.1:${node.routePort}`,
            NATS_ROUTE_1: node.allRoutes[0]!,
            NATS_ROUTE_2: node.allRoutes[1]!,
            NATS_ROUTE_3: node.allRoutes[2]!,
            NATS_TLS_CA: caFile,
            NATS_TLS_CERT: join(tls, 'server.pem'),
            NATS_TLS_KEY: join(tls, 'server-key.pem'),
          },
        }),
      });
      let mariadb = await startIsolatedMariaDb({ durable: true });
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
      const hub = await ProcessHub.start(
        {
          natsUrl: cluster.urls,
          natsCaFile: caFile,
          // Twelve processes starting at once on two cores.
          upTimeoutMs: 180_000,
          prefix,
          database,
          env: {
            PERRY_HUB_JS_REPLICAS: '3',
            PERRY_HUB_SCHEDULER_LEASE_MS: '1500',
            PERRY_HUB_INSTANCE_TTL_MS: '2000',
          },
        },
        groups,
      );
      const ingests = [hub.url, `http://127.0.0.1:${second.http}`];
      const gateways = [hub.workerUrl, `ws://127.0.0.1:${second.ws}`];

      const history = new WorkerHistory();
      const workers: SimulatedWorker[] = [];
      for (let i = 0; i < 4; i++) {
        const w = linuxWorker({
          url: gateways[i % 2]!,
          secret: WORKER_SECRET,
          name: `linux-${i}`,
          maxConcurrent: 3,
          history,
          reconnectDelayMs: 300,
          script: () => ({ durationMs: 100 + Math.floor(Math.random() * 300), logLines: 2 }),
        });
        workers.push(w);
        await w.connected();
      }

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
        while (next < BUILDS) {
          const i = next++;
          const input = tarball(`cluster-${i}`);
          // The user runs the CLI again when it failed before it could follow the build: the
          // submission was cut (a killed ingest), refused while MariaDB was down, or its first
          // WebSocket connect failed (a restarting gateway; the real CLI does not retry that one).
          // A re-run of an accepted submission is the same job, charged once.
          let result: Run | undefined;
          let firstJob: string | undefined;
          for (let run = 1; run <= 5; run++) {
            result = await publish(i + run - 1, input).catch(() => undefined);
            firstJob ??= result?.jobId;
            const cut = result === undefined || result.httpStatus >= 500;
            const lostFirstConnect = result?.outcome === 'disconnected' && result.connections === 0;
            if (!cut && !lostFirstConnect) break;
            reruns++;
            await new Promise((r) => setTimeout(r, 1_000));
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
              await new Promise((r) => setTimeout(r, 2_000));
              const res = await fetch(link.download_url).catch(() => undefined);
              if (res?.status === 200) bytes = sniffDownload(Buffer.from(await res.arrayBuffer()));
            }
          }
          const ok = result.outcome === 'complete' && bytes?.equals(expected) === true;
          outcomes.push({ jobId: result.jobId, ok, why: ok ? '' : `${result.outcome}: ${result.reason}` });
        }
      };

      const pauses: number[] = [];
      const faults: string[] = [];
      const injecting = (async () => {
        const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));
        const settle = () => wait(3_000);
        await wait(4_000);
        faults.push('kill -9 NATS node 2');
        await cluster.kill(1);
        await wait(5_000);
        await cluster.restart(1);
        faults.push('NATS node 2 restarted');
        await settle();
        for (const [k, s] of SERVICE_NAMES.entries()) {
          const victim = hub.process(`${s}-${k % 2 === 0 ? 'a' : 'b'}`);
          faults.push(`kill -9 ${victim.name}`);
          await victim.crashAndRestart();
          await victim.up();
          await settle();
        }
        faults.push('kill -9 MariaDB');
        process.kill(mariadb.pid, 'SIGKILL');
        await mariadb.exited;
        await wait(3_000);
        mariadb = await mariadb.restart();
        faults.push('MariaDB restarted');
      })();
      const watchingPauses = (async () => {
        let last = Date.now();
        let seen = 0;
        while (running) {
          await new Promise((r) => setTimeout(r, 100));
          if (history.started.length > seen) {
            seen = history.started.length;
            last = Date.now();
          } else if (next < BUILDS || hub.acknowledged.size > history.completes.length) {
            pauses.push(Date.now() - last);
          }
        }
      })();

      try {
        await Promise.all([...Array.from({ length: CONCURRENT_CLIS }, cli), injecting]);
        running = false;
        await watchingPauses;
        const failed = outcomes.filter((o) => !o.ok);
        console.log(
          `faults: ${faults.join('; ')}\n` +
            `CLIs ${outcomes.length}: acknowledged ${hub.acknowledged.size}, saw complete and downloaded ${outcomes.filter((o) => o.ok).length}, ` +
            `not acknowledged ${outcomes.filter((o) => o.jobId === undefined).length}; CLIs re-run by their user ${reruns}, ` +
            `links fetched again after a cut download ${linkRetries}; longest pause in dispatch ${Math.max(0, ...pauses)} ms`,
        );
        if (failed.length > 0) {
          for (const p of hub.processes) {
            const errors = p.current
              .output()
              .split('\n')
              .filter((l) => /"level":(50|60)/.test(l));
            if (errors.length > 0) console.log(`${p.name}:\n${errors.slice(-5).join('\n').slice(0, 3_000)}`);
          }
        }
        expect(failed.filter((o) => o.jobId !== undefined).map((o) => `${o.jobId}: ${o.why}`)).toEqual([]);
        // Refusals are allowed while MariaDB or a quorum is down, but they are few.
        expect(hub.acknowledged.size).toBeGreaterThanOrEqual(BUILDS * 0.9);
        await hub.reconnect();
        await expectEveryJobCompletedOnce(hub, 120_000);
      } finally {
        running = false;
        for (const w of workers) await w.stop();
        await hub.stop();
      }
    },
  );
});
