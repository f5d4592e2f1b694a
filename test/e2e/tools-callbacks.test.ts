// Signed callbacks, as hone-build receives them: a tool bound to a pro license submits plugin
// builds over NATS and over HTTP (with the license key, as hone-build does) with a callback_url; a callback server (here) that refuses the first three attempts of every
// delivery and is down while the hub restarts and while it is killed with -9. Every binary still
// arrives exactly once after de-duplicating by webhook-id, each signature and SHA-256 checks, each
// job gets one terminal event, retries carry the same webhook-id, and no plugin job reaches a sign
// stage.
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { describe, expect, test } from 'vitest';
import { connect, nkeyAuthenticator } from '@nats-io/transport-node';
import {
  HttpClient,
  HubClientError,
  ToolClient,
  toolConnectOptions,
  verifyArtifactWebhook,
  verifyEventWebhook,
} from '@perry-hub/client';
import type { RowDataPacket } from '@perry-hub/db';
import { getFreePort } from '@perry-hub/localstack';
import { ensureBuilt, runHub } from '../support/hub-process.js';
import { ProcessHub } from '../support/process-hub.js';
import { expectedArtifact } from '../support/rust-worker-jobs.js';
import { linuxWorker, WorkerHistory, type SimulatedWorker } from '../support/rust-workers.js';
import { ADMIN_SECRET, MANIFEST, WORKER_SECRET, tarball } from '../support/test-hub.js';

const FAILS_PER_DELIVERY = 3;

interface Received {
  attempts: Map<string, number>;
  artifacts: Map<string, { path: string; target: string; jobId: string; bytes: Buffer }>;
  events: Map<string, { path: string; event: Record<string, unknown> }>;
  bad: string[];
}

/** hone-build's side: `POST /artifact/:id` and an events path, verifying and de-duplicating. */
function callbackServer(secret: () => string, received: Received): Server {
  return createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const id = String(req.headers['webhook-id']);
      const n = (received.attempts.get(id) ?? 0) + 1;
      received.attempts.set(id, n);
      if (n <= FAILS_PER_DELIVERY) {
        res.writeHead(503).end();
        return;
      }
      try {
        if (req.headers['content-type'] === 'application/octet-stream') {
          const a = verifyArtifactWebhook(secret(), req.headers, body);
          if (!received.artifacts.has(id)) {
            received.artifacts.set(id, { path: req.url ?? '', target: a.target, jobId: a.jobId, bytes: body });
          }
        } else {
          const event = verifyEventWebhook(secret(), req.headers, body.toString('utf8'));
          if (!received.events.has(id)) received.events.set(id, { path: req.url ?? '', event });
        }
        res.writeHead(204).end();
      } catch (err) {
        received.bad.push(`${id}: ${(err as Error).message}`);
        res.writeHead(400).end();
      }
    });
  });
}

const listen = (server: Server, port: number) =>
  new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
const close = (server: Server) =>
  new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 90_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('signed callbacks', () => {
  test(
    'plugin binaries and terminal events reach the callback server through failures, a restart and a kill -9',
    { timeout: 300_000 },
    async () => {
      ensureBuilt();
      const dataDir = mkdtempSync(join(tmpdir(), 'perry-hub-callbacks-'));
      const port = await getFreePort();
      const hub = await ProcessHub.startAllInOne(dataDir, {
        // Explicit configuration: this hub may call back to loopback (its callback server is here).
        PERRY_HUB_CALLBACK_ALLOWED_ADDRESSES: '127.0.0.1',
        PERRY_HUB_CALLBACK_BACKOFF_BASE_MS: '200',
        PERRY_HUB_CALLBACK_BACKOFF_MAX_MS: '1000',
        PERRY_HUB_CALLBACK_MAX_ATTEMPTS: '60',
      });
      const received: Received = { attempts: new Map(), artifacts: new Map(), events: new Map(), bad: [] };
      let secret = '';
      let server = callbackServer(() => secret, received);
      const workers: SimulatedWorker[] = [];
      try {
        await listen(server, port);
        const worker = linuxWorker({
          url: hub.workerUrl,
          secret: WORKER_SECRET,
          name: 'linux-0',
          history: new WorkerHistory(),
        });
        workers.push(worker);
        await worker.connected();
        const account = (await (
          await fetch(`${hub.url}/api/v1/account/create`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN_SECRET}` },
            body: JSON.stringify({ github_id: '4242', github_username: 'fault' }),
          })
        ).json()) as { id: string };
        // The account's pro license (made at its first build), which hone-build is configured with.
        const first = await new HttpClient({ server: hub.url, credential: hub.apiToken }).submit({
          manifest: { ...MANIFEST, targets: ['linux'] },
          tarball: tarball('first build of the account'),
        });
        expect(first.job_id).toBeDefined();
        const licenses = (await (
          await fetch(`${hub.url}/api/v1/admin/licenses?tier=pro`, {
            headers: { authorization: `Bearer ${ADMIN_SECRET}` },
          })
        ).json()) as { licenses: { license_key: string; account_id: string | null }[] };
        const proLicense = licenses.licenses.find((l) => l.account_id === account.id)!.license_key;
        const added = runHub(['tools', 'add', 'hone', '--license', proLicense, '--server', hub.url, '--json'], {
          ...hub.env,
          PERRY_HUB_DATA_DIR: dataDir,
        });
        expect(await added.exited).toBe(0);
        const creds = JSON.parse(added.output().slice(added.output().indexOf('{'))) as {
          nkey_seed: string;
          webhook_secret: string;
        };
        secret = creds.webhook_secret;
        const nc = await connect({
          servers: hub.options.natsUrl,
          authenticator: nkeyAuthenticator(new TextEncoder().encode(creds.nkey_seed)),
          ...toolConnectOptions('hone'),
        });
        const tool = new ToolClient(nc, { tool: 'hone' });
        const input = Buffer.concat([tarball('prettier-hone 2.1.0'), randomBytes(50_000)]);
        const manifest = { ...MANIFEST, app_name: 'prettier-hone', version: '2.1.0', build_type: 'plugin' };
        const builds = new Map<string, { target: string; via: string }>();
        for (const target of ['macos', 'linux', 'windows']) {
          const { job_id } = await tool.submit({
            manifest: { ...manifest, targets: [target] },
            tarball: input,
            callbackUrl: `http://127.0.0.1:${port}/artifact/hb-${target}`,
          });
          builds.set(job_id, { target, via: 'nats' });
        }
        const http = new HttpClient({ server: hub.url, credential: proLicense });
        const viaHttp = await http.submit({
          manifest: { ...manifest, targets: ['linux'] },
          tarball: Buffer.concat([input, Buffer.from('http')]),
          callbackUrl: `http://127.0.0.1:${port}/artifact/hb-http`,
        });
        builds.set(viaHttp.job_id, { target: 'linux', via: 'http' });
        await nc.close();

        // The first attempts fail; then the receiver goes away, and the hub restarts, then dies.
        await until('first attempts of every job', () => received.attempts.size >= builds.size);
        await close(server);
        const deliveredBeforeClose = received.artifacts.size + received.events.size;
        expect(deliveredBeforeClose).toBeLessThan(builds.size * 2);
        await hub.process('hub').restart();
        await hub.process('hub').up();
        await new Promise((r) => setTimeout(r, 1_500));
        await hub.reconnect();
        const pending = async () => {
          const [r] = await hub.db.query<RowDataPacket[]>(
            "SELECT COUNT(*) AS n FROM callback_deliveries WHERE state = 'pending'",
          );
          return Number(r[0]?.['n']);
        };
        // Still owed when the hub dies: the queue must survive the kill -9.
        const pendingAtCrash = await pending();
        expect(pendingAtCrash).toBeGreaterThan(0);
        console.log(
          `delivered before the receiver went down: ${deliveredBeforeClose}; pending at kill -9: ${pendingAtCrash}`,
        );
        await hub.process('hub').crashAndRestart();
        await hub.process('hub').up();
        await hub.reconnect();
        server = callbackServer(() => secret, received);
        await listen(server, port);
        await until(
          'every binary and every terminal event',
          () => received.artifacts.size === builds.size && received.events.size === builds.size,
          120_000,
        );

        expect(received.bad).toEqual([]);
        // Each binary once, to its build's URL, as the worker built it.
        for (const [jobId, { target, via }] of builds) {
          const got = [...received.artifacts.values()].filter((a) => a.jobId === jobId);
          expect(got).toHaveLength(1);
          expect(got[0]!.target).toBe(target);
          expect(got[0]!.path).toBe(`/artifact/hb-${via === 'http' ? 'http' : target}`);
          const built = target === 'linux' ? 'linux' : `${target}-precompiled`;
          const source = via === 'http' ? Buffer.concat([input, Buffer.from('http')]) : input;
          expect(got[0]!.bytes).toEqual(expectedArtifact('linux', built, source));
          const events = [...received.events.values()].filter(
            (e) => (e.event['data'] as { job_id: string }).job_id === jobId,
          );
          expect(events.map((e) => e.event['type'])).toEqual(['build.succeeded']);
        }
        // Retries carried the same webhook-id: every id was tried more than it failed.
        for (const n of received.attempts.values()) expect(n).toBeGreaterThan(FAILS_PER_DELIVERY);
        expect(received.attempts.size).toBe(builds.size * 2);
        console.log(
          `deliveries: ${received.attempts.size}, attempts: ${[...received.attempts.values()].reduce((a, b) => a + b, 0)}`,
        );

        // No plugin job ever reached a sign stage; the deliveries are visible in the job's status.
        const [rows] = await hub.db.query<RowDataPacket[]>('SELECT id, stage, history FROM builds');
        for (const r of rows) {
          expect(r['stage']).toBe('build');
          expect(String(r['history'])).not.toContain('"sign"');
        }
        const status = await http.status(viaHttp.job_id);
        expect(status.callbacks?.map((c) => [c.kind, c.state])).toEqual([
          ['artifact', 'delivered'],
          ['event', 'delivered'],
        ]);
        expect(status.callbacks?.every((c) => c.attempts > FAILS_PER_DELIVERY)).toBe(true);
        // The HTTP side of the client: events replayed to the end, the job's list.
        const events: Record<string, unknown>[] = [];
        for await (const e of http.events(viaHttp.job_id)) events.push(e.message);
        expect(events.at(-1)?.['type']).toBe('complete');
        expect(events.filter((m) => m['stage'] === 'signing')).toEqual([]);
        expect(events.filter((m) => m['type'] === 'artifact_ready').map((m) => m['target'])).toEqual(['linux']);
        expect((await http.wait(viaHttp.job_id)).state).toBe('completed');
        expect((await http.list()).jobs.map((j) => j.id)).toContain(viaHttp.job_id);
        // The operator's view: the admin lists the tool's jobs by its name; nobody else may filter so.
        const byTool = await fetch(`${hub.url}/api/v1/jobs?tool=hone`, {
          headers: { authorization: `Bearer ${ADMIN_SECRET}` },
        });
        const listed = (await byTool.json()) as { jobs: { id: string; tool?: string }[] };
        expect(listed.jobs.map((j) => j.id).sort()).toEqual([...builds.keys()].sort());
        expect(listed.jobs.every((j) => j.tool === 'hone')).toBe(true);
        const stranger = await fetch(`${hub.url}/api/v1/jobs?tool=hone`, {
          headers: { authorization: `Bearer ${proLicense}` },
        });
        expect(stranger.status).toBe(403);

        // SSRF: refused at submission, naming the field.
        for (const url of [
          'http://169.254.169.254/latest/meta-data/',
          'http://[::1]:8080/x',
          'http://10.0.0.1/x',
          'http://127.0.0.2/x',
        ]) {
          const refused = await http
            .submit({ manifest: { ...manifest, targets: ['linux'] }, tarball: tarball(url), callbackUrl: url })
            .then(
              () => 'accepted',
              (err: unknown) => (err instanceof HubClientError ? `${err.status} ${err.message}` : String(err)),
            );
          expect([url, refused]).toEqual([
            url,
            expect.stringMatching(/^400 BAD_REQUEST: submit: Invalid 'callback_url': /),
          ]);
        }
        // build_type other than app or plugin.
        const bad = await http
          .submit({ manifest: { ...manifest, targets: ['linux'], build_type: 'library' }, tarball: tarball('bad') })
          .catch((err: unknown) => err as HubClientError);
        expect(bad).toMatchObject({ status: 400, code: 'BAD_REQUEST' });
        expect((bad as Error).message).toContain("'build_type' must be one of app, plugin");
      } finally {
        await close(server).catch(() => undefined);
        for (const w of workers) await w.stop();
        await hub.stop();
        rmSync(dataDir, { recursive: true, force: true });
      }
    },
  );
});
