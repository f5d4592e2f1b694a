/**
 * A stand-in for the ingest and the scheduler, just enough to drive the simulated CLI and workers
 * through a real worker-gateway: build intake (text multipart), first-fit dispatch over the
 * workers' command subjects, the transfer routes with Bearer job tokens, re-queue of finishing
 * stages as `<x>-sign`, and the appends the scheduler makes to a job's event log. It is a test
 * fixture for the clients' wire shapes, not a model of the real services.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { jetstream } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/nats-core';
import {
  HUB_VERSION,
  jobStatusEndpoint,
  subjects as makeSubjects,
  topologyNames,
  workerEventEndpoint,
  type WorkerCommand,
  type WorkerPresence,
} from '@perry-hub/contracts';
import { handle, serveEndpoints } from '@perry-hub/runtime';
import { pino } from 'pino';

export interface FakeJob {
  id: string;
  parts: Record<string, string>;
  partOrder: string[];
  headers: IncomingMessage['headers'];
  manifest: Record<string, unknown> & { targets: string[] };
  input: Buffer;
  attempt: number;
  token: string;
  status: 'queued' | 'running' | 'completed' | 'failed';
  uploads: { headers: IncomingMessage['headers']; bytes: Buffer }[];
}

export interface FakeHub {
  readonly url: string;
  readonly server: Server;
  readonly jobs: Map<string, FakeJob>;
  close(): Promise<void>;
}

const encoder = new TextEncoder();

export async function startFakeHub(nc: NatsConnection, prefix: string): Promise<FakeHub> {
  const subjects = makeSubjects(prefix);
  const js = jetstream(nc);
  const presence = await new Kvm(nc).open(topologyNames(prefix).presenceBucket);
  const jobs = new Map<string, FakeJob>();
  const downloads = new Map<string, Buffer>();
  const append = (jobId: string, text: string) => js.publish(subjects.jobEvents(jobId), encoder.encode(text));
  let url = '';

  const dispatch = async (job: FakeJob) => {
    for (let tries = 0; tries < 200; tries++) {
      for await (const key of await presence.keys()) {
        const w = (await presence.get(key))?.json<WorkerPresence>();
        if (!w?.capabilities || !job.manifest.targets.every((t) => w.capabilities.includes(t))) continue;
        job.attempt++;
        job.token = randomUUID();
        job.status = 'running';
        const command: WorkerCommand = {
          kind: 'assign',
          jobId: job.id,
          attempt: job.attempt,
          authToken: job.token,
          manifest: job.manifest,
          credentialsSealed: null,
          tarballUrl: `${url}/api/v1/tarball/${job.id}`,
          artifactUploadUrl: `${url}/api/v1/artifact/upload/${job.id}`,
        };
        const reply = await nc
          .request(subjects.workerCommand(w.workerId), JSON.stringify(command), { timeout: 3_000 })
          .catch(() => undefined); // a stale presence entry: try the next worker
        if (reply?.json<{ result?: { accepted?: boolean } }>().result?.accepted === true) return;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  };

  const scheduler = await serveEndpoints(
    { nc, subjects, service: 'scheduler', version: HUB_VERSION, log: pino({ level: 'silent' }) },
    [
      handle(jobStatusEndpoint, ({ jobId }) => {
        const job = jobs.get(jobId);
        return job ? { found: true, status: job.status, position: 0 } : { found: false, status: null, position: 0 };
      }),
      handle(workerEventEndpoint, async ({ jobId, attempt, message }) => {
        const job = jobs.get(jobId);
        if (!job || job.attempt !== attempt) return { accepted: false, reason: 'stale' };
        const needs = message['needs_finishing'];
        if (message['type'] === 'complete' && message['success'] === true && typeof needs === 'string') {
          await append(
            jobId,
            JSON.stringify({
              type: 'stage',
              job_id: jobId,
              stage: 'signing',
              message: 'Routing to platform worker for signing and packaging...',
            }),
          );
          job.manifest = { ...job.manifest, targets: [`${needs}-sign`] };
          const last = job.uploads.at(-1);
          if (last) job.input = last.bytes;
          void dispatch(job);
          return { accepted: true };
        }
        if (message['type'] === 'complete') job.status = message['success'] === true ? 'completed' : 'failed';
        await append(jobId, JSON.stringify(message));
        return { accepted: true };
      }),
    ],
  );

  const server = createServer((req, res) => void route(req, res));
  const route = async (req: IncomingMessage, res: ServerResponse) => {
    const body = await new Promise<Buffer>((resolve) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => resolve(Buffer.concat(chunks)));
    });
    const send = (status: number, value: unknown, type = 'application/json') => {
      res.writeHead(status, { 'content-type': type }).end(typeof value === 'string' ? value : JSON.stringify(value));
    };
    const path = (req.url ?? '').split('/');
    const what = path[3] === 'artifact' ? path[4] : path[3];
    const id = path.at(-1);
    const job = id ? jobs.get(id) : undefined;
    const authorized = job !== undefined && req.headers.authorization === `Bearer ${job.token}`;
    if (req.method === 'POST' && req.url === '/api/v1/build') {
      const boundary = /boundary=(.+)$/.exec(req.headers['content-type'] ?? '')?.[1] ?? '';
      const parts: Record<string, string> = {};
      const partOrder: string[] = [];
      for (const chunk of body.toString('utf8').split(`--${boundary}`).slice(1, -1)) {
        const m = /^\r\nContent-Disposition: form-data; name="([^"]+)"\r\n\r\n([\s\S]*)\r\n$/.exec(chunk);
        if (!m) continue;
        parts[m[1]!] = m[2]!;
        partOrder.push(m[1]!);
      }
      const created: FakeJob = {
        id: randomUUID(),
        parts,
        partOrder,
        headers: req.headers,
        manifest: JSON.parse(parts['manifest'] ?? '{}') as FakeJob['manifest'],
        input: Buffer.from(parts['tarball_b64'] ?? '', 'base64'),
        attempt: 0,
        token: '',
        status: 'queued',
        uploads: [],
      };
      jobs.set(created.id, created);
      void dispatch(created);
      return send(200, { job_id: created.id, ws_url: '/ws', position: 1 });
    }
    if (req.method === 'GET' && what === 'tarball') {
      if (!authorized) return send(403, { error: { code: 'FORBIDDEN', message: 'Invalid job token' } });
      return send(200, job.input.toString('base64'), 'text/plain');
    }
    if (req.method === 'POST' && what === 'upload') {
      if (!authorized) return send(403, { error: { code: 'FORBIDDEN', message: 'Invalid job token' } });
      const bytes = Buffer.from(body.toString('utf8').trim(), 'base64');
      job.uploads.push({ headers: req.headers, bytes });
      const token = randomUUID();
      downloads.set(token, bytes);
      const downloadUrl = `${url}/api/v1/dl/${token}`;
      const h = (name: string) => String(req.headers[name] ?? '');
      if (h('x-artifact-target') !== 'windows-precompiled') {
        await append(
          job.id,
          JSON.stringify({
            type: 'artifact_ready',
            job_id: job.id,
            target: h('x-artifact-target'),
            artifact_name: h('x-artifact-name'),
            artifact_size: bytes.length,
            sha256: h('x-artifact-sha256'),
            download_url: downloadUrl,
            expires_in_secs: 600,
          }),
        );
      }
      return send(200, { token, download_url: downloadUrl, size: bytes.length });
    }
    if (req.method === 'GET' && what === 'dl' && id && downloads.has(id)) {
      const bytes = downloads.get(id)!;
      downloads.delete(id);
      return send(200, bytes.toString('base64'), 'text/plain');
    }
    send(404, { error: { code: 'NOT_FOUND', message: 'Not found' } });
  };
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  return {
    url,
    server,
    jobs,
    close: async () => {
      await scheduler.stop();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}
