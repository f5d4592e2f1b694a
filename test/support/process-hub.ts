/**
 * The hub as separate `perry-hub start <service>...` processes, so fault tests can `kill -9` one
 * of them and start it again, on servers the test controls. It also keeps the external history
 * the fault tests judge by: what the hub acknowledged, and what it finally did.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect, nkeyAuthenticator } from '@nats-io/transport-node';
import { jetstream } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { DEFAULT_SUBJECT_PREFIX, SERVICE_NAMES, natsInboxPrefix, topologyNames } from '@perry-hub/contracts';
import { dbOptions, openPool, type Pool, type RowDataPacket } from '@perry-hub/db';
import { generateSealKey } from '@perry-hub/runtime';
import { ensureNkeySeeds, getFreePorts, SEED_FILE_SUFFIX } from '@perry-hub/localstack';
import { buildRequest } from './perry-cli.js';
import { freePorts, localEnv, runHub, type HubProcess, type LocalPorts } from './hub-process.js';
import { ADMIN_SECRET, CREDENTIALS, MANIFEST, WORKER_SECRET, tarball } from './test-hub.js';
import { connectTestNats, recordNatsLog, testNatsCredentialsDir } from '@perry-hub/testkit';

export interface Database {
  host: string;
  port: number;
  user: string;
  password: string;
  database: string;
}

export class ManagedProcess {
  #current: HubProcess;
  /** The output of the processes killed or restarted before the current one. */
  readonly #earlier: string[] = [];
  starts = 1;
  constructor(
    readonly name: string,
    private readonly args: string[],
    private readonly env: Record<string, string>,
  ) {
    this.#current = runHub(args, env);
  }
  get current(): HubProcess {
    return this.#current;
  }
  /** Every start's output, oldest first, each after a line that says which start it was. */
  output(): string {
    return [...this.#earlier, this.#current.output()]
      .map((out, i) => `----- ${this.name}, start ${i + 1} -----\n${out}`)
      .join('\n');
  }
  #replace(): void {
    this.#earlier.push(this.#current.output());
    this.#current = runHub(this.args, this.env);
    this.starts += 1;
  }
  async up(timeoutMs = this.upTimeoutMs): Promise<void> {
    await this.#current.waitFor(/Perry Hub is up/, timeoutMs);
  }
  /** How long a start may take (many processes starting at once on a small machine take longer). */
  upTimeoutMs = 60_000;
  /** kill -9, then start again on the same configuration. */
  async crashAndRestart(): Promise<void> {
    this.#current.child.kill('SIGKILL');
    await this.#current.exited;
    this.#replace();
  }
  /** An orderly stop (SIGTERM or Ctrl-C's SIGINT), then start again on the same configuration. */
  async restart(signal: 'SIGTERM' | 'SIGINT' = 'SIGTERM'): Promise<void> {
    this.#current.child.kill(signal);
    const code = await this.#current.exited;
    if (code !== 0)
      throw new Error(`perry-hub exited with ${code} on ${signal}:\n${this.#current.output().slice(-4_000)}`);
    this.#replace();
  }
  /** SIGTERM; SIGKILL if it is still there after `killAfterMs`, so a hung process cannot hang the test. */
  async stop(killAfterMs = 30_000): Promise<void> {
    if (this.#current.child.exitCode === null) this.#current.child.kill('SIGTERM');
    const timer = setTimeout(() => this.#current.child.kill('SIGKILL'), killAfterMs);
    await this.#current.exited;
    clearTimeout(timer);
  }
}

export interface ProcessHubOptions {
  natsUrl: string;
  prefix: string;
  database: Database;
  env?: Record<string, string>;
  /** The all-in-one's own servers (nats-server, MariaDB) in this data directory, not the test's. */
  local?: { dataDir: string; ports: LocalPorts };
  /** CA of NATS servers that require TLS: for the services and for the test's own connection. */
  natsCaFile?: string;
  /** How long each process may take to start (default 60 s). */
  upTimeoutMs?: number;
}

interface Completions {
  completes: Map<string, number>;
  done: Map<string, number>;
  /** Each job's `artifact_ready` messages: sequence, message id and token, to tell a stored repeat from a second upload. */
  artifactsReady: Map<string, string[]>;
}

export class ProcessHub {
  readonly processes: ManagedProcess[] = [];
  readonly acknowledged = new Set<string>();
  readonly env: Record<string, string>;
  readonly url: string;
  readonly workerUrl: string;
  nc!: NatsConnection;
  db!: Pool;
  apiToken = '';

  private constructor(
    readonly options: ProcessHubOptions,
    httpPort: number,
    wsPort: number,
  ) {
    const { natsUrl, prefix, database, local } = options;
    this.url = `http://127.0.0.1:${httpPort}`;
    this.workerUrl = `ws://127.0.0.1:${wsPort}`;
    const servers = local
      ? localEnv(local.dataDir, local.ports)
      : {
          PERRY_HUB_NATS_URL: natsUrl,
          PERRY_HUB_NATS_CREDENTIALS_DIR: testNatsCredentialsDir(),
          ...(options.natsCaFile ? { PERRY_HUB_NATS_TLS_CA_FILE: options.natsCaFile } : {}),
          PERRY_DB_HOST: database.host,
          PERRY_DB_PORT: String(database.port),
          PERRY_DB_USER: database.user,
          PERRY_DB_PASSWORD: database.password,
        };
    this.env = {
      ...servers,
      PERRY_HUB_SUBJECT_PREFIX: prefix,
      PERRY_DB_NAME: database.database,
      PERRY_HUB_HTTP_PORT: String(httpPort),
      PERRY_HUB_HTTP_HOST: '127.0.0.1',
      PERRY_HUB_WS_PORT: String(wsPort),
      PERRY_HUB_WS_HOST: '127.0.0.1',
      PERRY_HUB_PUBLIC_URL: this.url,
      PERRY_HUB_ADMIN_SECRET: ADMIN_SECRET,
      PERRY_HUB_WORKER_SECRET: WORKER_SECRET,
      PERRY_HUB_CREDENTIALS_KEY: generateSealKey(),
      PERRY_HUB_SELF_HOSTED: 'true',
      PERRY_HUB_VM_PROVIDER: 'none',
      PERRY_HUB_LOG_LEVEL: 'warn',
      ...options.env,
    };
  }

  /**
   * One process per group. A group given with `env` runs with those variables over the hub's
   * (e.g. its own ports for a second gateway or ingest); the others share `hub.env`, so a change
   * there applies at their next start.
   */
  static async start(
    options: ProcessHubOptions,
    groups: Record<string, string[] | { services: string[]; env: Record<string, string> }>,
  ): Promise<ProcessHub> {
    const hub = new ProcessHub(options, ...((await getFreePorts(2)) as [number, number]));
    for (const [name, group] of Object.entries(groups)) {
      const [services, env] = Array.isArray(group) ? [group, hub.env] : [group.services, { ...hub.env, ...group.env }];
      const p = new ManagedProcess(name, ['start', ...services], env);
      if (options.upTimeoutMs !== undefined) p.upTimeoutMs = options.upTimeoutMs;
      hub.processes.push(p);
    }
    try {
      await Promise.all(hub.processes.map((p) => p.up()));
      await hub.reconnect();
      hub.apiToken = await hub.proAccount();
    } catch (err) {
      // Those that came up would run on, orphaned, after the test.
      await hub.stop();
      throw err;
    }
    return hub;
  }

  /**
   * `perry-hub start` with its own nats-server and MariaDB under `dataDir`: a kill -9 of the
   * process takes them down with it. The history is read from those servers (call `reconnect()`
   * after each restart).
   */
  static async startAllInOne(dataDir: string, env: Record<string, string> = {}): Promise<ProcessHub> {
    const ports = await freePorts();
    const hub = new ProcessHub(
      {
        natsUrl: `nats://127.0.0.1:${ports.nats}`,
        prefix: DEFAULT_SUBJECT_PREFIX,
        database: { host: '127.0.0.1', port: ports.db, user: 'root', password: '', database: 'perry_hub' },
        env,
        local: { dataDir, ports },
      },
      ports.http,
      ports.ws,
    );
    hub.processes.push(new ManagedProcess('hub', ['start'], hub.env));
    await hub.process('hub').up();
    await hub.reconnect();
    hub.apiToken = await hub.proAccount();
    return hub;
  }

  /** (Re)open the test's own connections to the hub's servers (after they restarted). */
  async reconnect(): Promise<void> {
    await this.nc?.close().catch(() => undefined);
    await this.db?.end().catch(() => undefined);
    const local = this.options.local;
    // The all-in-one's own nats-server admits only the keys it generated: the test reads its
    // history (events, presence) as the worker-gateway, which may read both.
    this.nc = local
      ? await connect({
          servers: this.options.natsUrl,
          authenticator: nkeyAuthenticator(
            new TextEncoder().encode(
              readFileSync(join(local.dataDir, 'nats-credentials', `worker-gateway${SEED_FILE_SUFFIX}`), 'utf8').trim(),
            ),
          ),
          inboxPrefix: natsInboxPrefix(this.options.prefix, 'worker-gateway'),
        })
      : await connectTestNats(
          this.options.natsUrl,
          this.options.natsCaFile ? { tls: { caFile: this.options.natsCaFile } } : {},
        );
    this.db = openPool(dbOptions(this.options.database, 2));
  }

  process(name: string): ManagedProcess {
    return this.processes.find((p) => p.name === name)!;
  }

  private async proAccount(): Promise<string> {
    return this.account('4242', 'fault');
  }

  /** Another pro account (an API token): one per simulated user. */
  async account(githubId: string, githubUsername: string): Promise<string> {
    const post = async (path: string, body: unknown) => {
      const res = await fetch(`${this.url}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN_SECRET}` },
        body: JSON.stringify(body),
      });
      return (await res.json()) as Record<string, unknown>;
    };
    const created = await post('/api/v1/account/create', { github_id: githubId, github_username: githubUsername });
    await post('/api/v1/account/update', { account_id: created['id'], tier: 'pro' });
    return String(created['api_token']);
  }

  /** One submission exactly as the CLI sends it; the job id is recorded only if acknowledged. */
  async submit(i: number, url = this.url): Promise<string | undefined> {
    const request = buildRequest({
      manifest: { ...MANIFEST, targets: ['linux'] },
      credentials: CREDENTIALS,
      tarball: tarball(`fault-${i}`),
      apiToken: this.apiToken,
    });
    try {
      const res = await fetch(`${url}/api/v1/build`, request);
      if (res.status !== 200) return undefined;
      const body = (await res.json()) as { job_id: string };
      this.acknowledged.add(body.job_id);
      return body.job_id;
    } catch {
      return undefined;
    }
  }

  async statuses(): Promise<Map<string, string>> {
    const [rows] = await this.db.query<RowDataPacket[]>(
      'SELECT id, status, errorMessage, attempt, retries FROM builds',
    );
    return new Map(
      rows.map((r) => {
        const why =
          r['status'] === 'completed'
            ? ''
            : ` (${String(r['errorMessage'])}, attempt ${r['attempt']}, retries ${r['retries']})`;
        return [String(r['id']), `${String(r['status'])}${why}`];
      }),
    );
  }

  /** What MySQL recorded of a job, to explain a verdict: its state changes and its artifacts. */
  async record(jobId: string): Promise<string> {
    const [builds] = await this.db.query<RowDataPacket[]>('SELECT history FROM builds WHERE id = ?', [jobId]);
    const [artifacts] = await this.db.query<RowDataPacket[]>(
      'SELECT token, attempt, target, held, created_at FROM artifacts WHERE job_id = ? ORDER BY created_at',
      [jobId],
    );
    return JSON.stringify({ history: builds[0]?.['history'], artifacts });
  }

  /** Wait until every acknowledged job is terminal. */
  async settle(timeoutMs: number): Promise<Map<string, string>> {
    let last = new Map<string, string>();
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      last = await this.statuses();
      const open = [...this.acknowledged].filter(
        (id) => !['completed', 'failed', 'cancelled', 'expired'].includes((last.get(id) ?? '').split(' ')[0]!),
      );
      if (open.length === 0) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    return last;
  }

  /**
   * How many `complete` messages each job's event log holds (what CLIs saw), and JobDone events.
   * Right after a restart or a change of replicas the stream may have no leader for a moment (a
   * pull answered "no responders"): the log is then read again from the start, for up to 30 s.
   */
  async completions(): Promise<Completions> {
    const deadline = Date.now() + 30_000;
    for (;;) {
      try {
        return await this.#readCompletions();
      } catch (err) {
        if (Date.now() > deadline) throw err;
        console.log(`reading the event log again: ${(err as Error).message}`);
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  }

  async #readCompletions(): Promise<Completions> {
    const js = jetstream(this.nc);
    const completes = new Map<string, number>();
    const done = new Map<string, number>();
    const artifactsReady = new Map<string, string[]>();
    // The stream holds exactly the job events and the done events (one filter: server 2.9).
    const consumer = await js.consumers.get(topologyNames(this.options.prefix).eventsStream);
    for (;;) {
      const m = await consumer.next({ expires: 2000 });
      if (!m) break;
      const jobId = m.subject.split('.').at(-2)!;
      if (m.subject.endsWith('.done')) done.set(jobId, (done.get(jobId) ?? 0) + 1);
      else {
        const text = new TextDecoder().decode(m.data);
        if (text.includes('"type":"complete"')) completes.set(jobId, (completes.get(jobId) ?? 0) + 1);
        if (text.includes('"type":"artifact_ready"')) {
          const token = /\/dl\/([^"]+)"/.exec(text)?.[1];
          const said = `seq ${m.seq} id ${m.headers?.get('Nats-Msg-Id') ?? '-'} token ${token}`;
          artifactsReady.set(jobId, [...(artifactsReady.get(jobId) ?? []), said]);
        }
      }
      if (m.info.pending === 0) break;
    }
    return { completes, done, artifactsReady };
  }

  async usage(): Promise<number> {
    const [rows] = await this.db.query<RowDataPacket[]>('SELECT COALESCE(SUM(publishes), 0) AS n FROM usage_counters');
    return Number(rows[0]?.['n'] ?? 0);
  }

  async stop(): Promise<void> {
    for (const p of [...this.processes].reverse()) await p.stop();
    await this.nc?.close();
    await this.db?.end();
    // The all-in-one's own nats-server has the exact-prefix permissions of a deployment (the
    // shared test server's hold for any prefix): its services' violations fail the test file too.
    const local = this.options.local;
    if (!local) return;
    const keys = ensureNkeySeeds(join(local.dataDir, 'nats-credentials'), SERVICE_NAMES);
    recordNatsLog(join(local.dataDir, 'nats.log'), new Map([...keys].map(([name, key]) => [key, name])));
  }
}
