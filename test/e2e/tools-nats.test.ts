// Tools as first-class users over NATS, on the real all-in-one (its own nats-server and MariaDB):
// `perry-hub tools add` creates an identity bound to a pro account and reloads the local
// nats-server; the tool, acting as hone-build would, uploads a plugin's tarball in chunks, submits
// plugin builds for macos, linux and windows, follows each job's events, reads its status and
// list, and fetches each binary checked against its SHA-256. A second tool and the CLI user of the
// same account are invisible to it, and its credentials reach nothing internal.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { connect, nkeyAuthenticator, PermissionViolationError, type NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { HttpClient, HubClientError, ToolClient, toolConnectOptions } from '@perry-hub/client';
import { topologyNames } from '@perry-hub/contracts';
import { until } from '@perry-hub/testkit';
import type { SimulatedWorker } from '../support/rust-workers.js';
import { ensureBuilt, runHub } from '../support/hub-process.js';
import { ProcessHub } from '../support/process-hub.js';
import { expectedArtifact } from '../support/rust-worker-jobs.js';
import { WorkerHistory, linuxWorker } from '../support/rust-workers.js';
import { ADMIN_SECRET, CREDENTIALS, MANIFEST, WORKER_SECRET, tarball } from '../support/test-hub.js';
import { buildRequest } from '../support/perry-cli.js';

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function cli(hub: ProcessHub, ...args: string[]): Promise<string> {
  const p = runHub([...args, '--server', hub.url], { ...hub.env, PERRY_HUB_DATA_DIR: hub.options.local!.dataDir });
  const code = await p.exited;
  if (code !== 0) throw new Error(`perry-hub ${args.join(' ')} exited ${code}:\n${p.output()}`);
  return p.output();
}

interface Tool {
  nc: NatsConnection;
  client: ToolClient;
  violations: PermissionViolationError[];
  seed: string;
}

async function connectTool(hub: ProcessHub, name: string, seed: string): Promise<Tool> {
  const nc = await connect({
    servers: hub.options.natsUrl,
    authenticator: nkeyAuthenticator(new TextEncoder().encode(seed)),
    ...toolConnectOptions(name),
  });
  const violations: PermissionViolationError[] = [];
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === 'error' && s.error instanceof PermissionViolationError) violations.push(s.error);
    }
  })();
  return { nc, client: new ToolClient(nc, { tool: name, chunkBytes: 64 * 1024 }), violations, seed };
}

const seedOf = (output: string) => /NATS seed:\s+(SU[A-Z0-9]+)/.exec(output)![1]!;

async function accountId(hub: ProcessHub): Promise<string> {
  const res = await fetch(`${hub.url}/api/v1/account/create`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN_SECRET}` },
    body: JSON.stringify({ github_id: '4242', github_username: 'fault' }),
  });
  return String(((await res.json()) as { id: string }).id);
}

async function violationAfter(tool: Tool, attempt: () => Promise<unknown>): Promise<string> {
  const before = tool.violations.length;
  const outcome = await attempt().then(
    () => 'answered',
    (err: unknown) => (err instanceof HubClientError ? err.code : String((err as Error).message)),
  );
  await tool.nc.flush().catch(() => undefined);
  await new Promise((r) => setTimeout(r, 100));
  return tool.violations.length > before ? 'violation' : outcome;
}

describe('tools over NATS', () => {
  test(
    'a tool bound to a pro account builds plugins for three platforms over NATS, sees only its own jobs',
    { timeout: 240_000 },
    async () => {
      ensureBuilt();
      const dataDir = mkdtempSync(join(tmpdir(), 'perry-hub-tools-'));
      const hub = await ProcessHub.startAllInOne(dataDir);
      const workers: SimulatedWorker[] = [];
      const tools: Tool[] = [];
      try {
        const history = new WorkerHistory();
        const worker = linuxWorker({ url: hub.workerUrl, secret: WORKER_SECRET, name: 'linux-0', history });
        workers.push(worker);
        await worker.connected();

        const added = await cli(hub, 'tools', 'add', 'hone', '--account', await accountId(hub));
        expect(added).toMatch(/The local nats-server was reloaded with \d+ users/);
        expect(added).toMatch(/Webhook secret: whsec_[A-Za-z0-9+/=]{32}/);
        const license = (await (await fetch(`${hub.url}/api/v1/license/register`, { method: 'POST' })).json()) as {
          license_key: string;
        };
        const other = await cli(hub, 'tools', 'add', 'other', '--license', license.license_key);
        const hone = await connectTool(hub, 'hone', seedOf(added));
        const stranger = await connectTool(hub, 'other', seedOf(other));
        tools.push(hone, stranger);

        const jsm = await jetstreamManager(hub.nc);
        const eventConsumers = async () =>
          (await jsm.streams.info(topologyNames(hub.options.prefix).eventsStream)).state.consumer_count;
        const durableConsumers = await eventConsumers();
        // One plugin version, three platforms, each its own job; the tarball takes several chunks.
        const input = Buffer.concat([tarball('prettier-hone 2.1.0'), randomBytes(200_000)]);
        const manifest = { ...MANIFEST, app_name: 'prettier-hone', version: '2.1.0', build_type: 'plugin' };
        const jobs = new Map<string, string>();
        for (const target of ['macos', 'linux', 'windows']) {
          const accepted = await hone.client.submit({ manifest: { ...manifest, targets: [target] }, tarball: input });
          jobs.set(target, accepted.job_id);
        }
        for (const [target, jobId] of jobs) {
          const { outcome, events } = await hone.client.wait(jobId);
          expect(outcome).toBe('succeeded');
          const types = events.map((e) => e.message['type']);
          expect(types).not.toContain('error');
          expect(events.filter((e) => e.message['stage'] === 'signing')).toEqual([]);
          const ready = events.filter((e) => e.message['type'] === 'artifact_ready');
          expect(ready.map((e) => e.message['target'])).toEqual([target]);
          expect(types.at(-1)).toBe('complete');

          const status = await hone.client.status(jobId);
          expect(status).toMatchObject({ state: 'completed', stage: 'build', targets: [target] });
          expect(status.artifacts.map((a) => a.target)).toEqual([target]);
          const artifact = status.artifacts[0]!;
          const bytes = await hone.client.download(jobId, artifact.name);
          const built = target === 'linux' ? 'linux' : `${target}-precompiled`;
          expect(bytes).toEqual(expectedArtifact('linux', built, input));
          expect(sha256(bytes)).toBe(artifact.sha256);
          // Resumed from the middle: the same bytes, checked as a whole.
          expect(await hone.client.download(jobId, artifact.name, bytes.subarray(0, 7))).toEqual(bytes);
          // The status links the artifact for curl-only tools too: raw bytes, resumed with Range.
          expect(artifact.download_url).toMatch(new RegExp(`^${hub.url}/api/v1/dl/[0-9a-f-]{36}$`));
          const viaHttp = new HttpClient({ server: hub.url, credential: hub.apiToken });
          expect(await viaHttp.download(artifact.download_url!, artifact.sha256, bytes.subarray(0, 5))).toEqual(bytes);
        }
        expect(history.started.map((h) => h.targets[0]).sort()).toEqual(['linux', 'macos', 'windows']);
        // Each events request deleted the consumer it read through as it answered: the log's
        // consumers are the hub's durable ones again, as before the first submission.
        await until(
          "no consumer left on the jobs' logs",
          async () => (await eventConsumers()) === durableConsumers,
          5_000,
        );

        // A CLI build of the same account is not the tool's.
        const cliRes = await fetch(
          `${hub.url}/api/v1/build`,
          buildRequest({
            manifest: { ...MANIFEST, targets: ['linux'] },
            credentials: CREDENTIALS,
            tarball: tarball('cli'),
            apiToken: hub.apiToken,
          }),
        );
        const cliJob = ((await cliRes.json()) as { job_id: string }).job_id;
        const listed = await hone.client.list();
        expect(listed.jobs.map((j) => j.id).sort()).toEqual([...jobs.values()].sort());
        expect((await stranger.client.list()).jobs).toEqual([]);

        // Every way at another's job: not found, as if it did not exist.
        const honeJob = jobs.get('linux')!;
        const name = (await hone.client.status(honeJob)).artifacts[0]!.name;
        for (const [what, attempt] of [
          ['status', () => stranger.client.status(honeJob)],
          ['events', () => stranger.client.wait(honeJob)],
          ['artifact', () => stranger.client.download(honeJob, name)],
          ['cancel', () => stranger.client.cancel(honeJob)],
          ['cli job status', () => hone.client.status(cliJob)],
          ['cli job cancel', () => hone.client.cancel(cliJob)],
        ] as const) {
          expect([what, await violationAfter(stranger, attempt)]).toEqual([what, 'JOB_NOT_FOUND']);
        }
        // Another tool's subjects and the hub's internal ones: refused by the nats-server.
        const as = (subject: string) => () => stranger.nc.request(subject, '{}', { timeout: 1_000 });
        for (const subject of [
          'perry.tools.hone.status',
          'perry.tools.hone.list',
          'perry.svc.scheduler.cancel',
          'perry.svc.artifact-store.claim-download',
          'perry.intake.x',
          '$JS.API.INFO',
          '$JS.API.STREAM.INFO.PERRY_EVENTS',
          '$O.perry-blobs.M.x',
        ]) {
          expect([subject, await violationAfter(stranger, as(subject))]).toEqual([subject, 'violation']);
        }
        const sub = stranger.nc.subscribe('perry.jobs.*.events');
        expect(await violationAfter(stranger, () => stranger.nc.flush())).toBe('violation');
        sub.unsubscribe();

        // Rotate: the new seed works once the server reloaded, the old one no longer connects.
        const rotated = await cli(hub, 'tools', 'rotate', 'hone');
        const fresh = await connectTool(hub, 'hone', seedOf(rotated));
        tools.push(fresh);
        expect((await fresh.client.list()).jobs).toHaveLength(3);
        await expect(connectTool(hub, 'hone', hone.seed)).rejects.toThrow(/Authorization Violation/i);
        // Remove: the key is gone from the server.
        await cli(hub, 'tools', 'remove', 'other');
        await expect(connectTool(hub, 'other', stranger.seed)).rejects.toThrow(/Authorization Violation/i);

        // A job that waits (no worker builds visionos): its status is the HTTP detail, place included.
        const waiting = await fresh.client.submit({ manifest: { ...manifest, targets: ['visionos'] }, tarball: input });
        expect(await fresh.client.status(waiting.job_id)).toMatchObject({ state: 'queued', position: 1 });
        const viaHttp = await fetch(`${hub.url}/api/v1/jobs/${waiting.job_id}`, {
          headers: { authorization: `Bearer ${ADMIN_SECRET}` },
        });
        expect(await viaHttp.json()).toMatchObject({ state: 'queued', position: 1 });
        // An error names whether the same request may be sent again: never, for a job not yours.
        const refused = await fresh.nc.request('perry.tools.hone.status', JSON.stringify({ job_id: cliJob }));
        expect(refused.json()).toEqual({
          ok: false,
          error: { code: 'JOB_NOT_FOUND', message: 'Job not found', retry: 'never' },
        });
        expect(await fresh.client.cancel(waiting.job_id)).toEqual({ job_id: waiting.job_id, cancelled: true });

        // Only the tools ever broke a permission: the services never did.
        const log = readFileSync(join(dataDir, 'nats.log'), 'utf8');
        const offenders = new Set([...log.matchAll(/Violation - (?:Nkey|User) "([^"]+)"/g)].map((m) => m[1]!));
        const toolKeys = new Set(
          (
            (await (
              await fetch(`${hub.url}/api/v1/admin/tools`, { headers: { authorization: `Bearer ${ADMIN_SECRET}` } })
            ).json()) as { tools: { nkey_public: string }[] }
          ).tools.map((t) => t.nkey_public),
        );
        const strangerKey = /public key (U[A-Z0-9]+)/.exec(other)![1]!;
        for (const key of offenders) expect(toolKeys.has(key) || key === strangerKey).toBe(true);
        console.log(`permission violations in the server log: ${offenders.size} identities (tools only)`);
      } finally {
        for (const t of tools) await t.nc.close().catch(() => undefined);
        for (const w of workers) await w.stop();
        await hub.stop();
        rmSync(dataDir, { recursive: true, force: true });
      }
    },
  );
});
