// The original's verification gate (off by default): build_complete with a distribution makes the
// hub send the artifact to perry-verify, then tell the worker to proceed or to skip.
import { createServer, type Server } from 'node:http';
import { once } from 'node:events';
import { WebSocket } from 'ws';
import { describe, expect } from 'vitest';
import { test } from '@perry-hub/testkit';
import { buildRequest } from '../support/perry-cli.js';
import { CREDENTIALS, MANIFEST, WORKER_SECRET, startTestHub, tarball } from '../support/test-hub.js';

interface FakeVerify {
  url: string;
  server: Server;
  submissions: string[];
}

/** perry-verify: accepts a submission, answers "running" once, then the given verdict. */
async function fakeVerify(verdict: { result: string; message?: string }): Promise<FakeVerify> {
  const submissions: string[] = [];
  let polls = 0;
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      if (req.method === 'POST' && req.url === '/verify') {
        submissions.push(body);
        res.end('{"id":"v-1","status":"queued"}');
      } else if (req.method === 'GET' && req.url === '/verify/v-1') {
        polls += 1;
        res.end(polls < 2 ? '{"status":"running"}' : JSON.stringify({ status: 'completed', ...verdict }));
      } else res.writeHead(404).end();
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as { port: number }).port;
  return { url: `http://127.0.0.1:${port}`, server, submissions };
}

/** A worker that, unlike today's Rust workers, sends build_complete after uploading. */
async function gateWorker(url: string, artifact: Buffer) {
  const ws = new WebSocket(url);
  await once(ws, 'open');
  const frames: Record<string, unknown>[] = [];
  ws.on('message', (d) => frames.push(JSON.parse(String(d)) as Record<string, unknown>));
  ws.send(
    JSON.stringify({
      type: 'worker_hello',
      capabilities: ['ios'],
      name: 'gate',
      secret: WORKER_SECRET,
      max_concurrent: 1,
    }),
  );
  await expect.poll(() => frames.some((f) => f['type'] === 'job_assign'), { timeout: 15_000 }).toBe(true);
  const assign = frames.find((f) => f['type'] === 'job_assign')!;
  const jobId = String(assign['job_id']);
  const up = await fetch(String(assign['artifact_upload_url']), {
    method: 'POST',
    headers: {
      authorization: `Bearer ${String(assign['auth_token'])}`,
      'content-type': 'text/plain',
      'x-artifact-name': 'MyApp.ipa',
      'x-artifact-target': 'ios-sign',
    },
    body: artifact.toString('base64'),
  });
  expect(up.status).toBe(200);
  ws.send(JSON.stringify({ type: 'build_complete', job_id: jobId, has_distribution: true, duration_secs: 1.5 }));
  return { ws, frames, jobId };
}

describe('verification gate', () => {
  for (const [label, verdict, expected] of [
    ['passes', { result: 'passed' }, 'proceed_distribute'],
    ['fails', { result: 'failed', message: 'App crashed on launch' }, 'skip_distribute'],
  ] as const) {
    test(`when verification ${label} the worker gets ${expected}`, async ({ natsUrl, prefix, database }) => {
      const verify = await fakeVerify(verdict);
      const hub = await startTestHub(
        { natsUrl, prefix, database },
        {
          PERRY_HUB_VERIFY_ENABLED: 'true',
          PERRY_VERIFY_URL: verify.url,
          PERRY_HUB_VERIFY_POLL_MS: '100',
          PERRY_HUB_SELF_HOSTED: 'true',
        },
      );
      try {
        const licenseKey = await hub.registerLicense();
        const res = await fetch(
          `${hub.url}/api/v1/build`,
          buildRequest({
            manifest: { ...MANIFEST, targets: ['ios'] },
            credentials: CREDENTIALS,
            tarball: tarball('verify'),
            licenseKey,
          }),
        );
        expect(res.status).toBe(200);
        const artifact = Buffer.from('signed ipa bytes');
        const worker = await gateWorker(hub.workerUrl, artifact);
        await expect.poll(() => worker.frames.some((f) => f['type'] === expected), { timeout: 15_000 }).toBe(true);
        const command = worker.frames.find((f) => f['type'] === expected)!;
        expect(command).toEqual(
          expected === 'proceed_distribute'
            ? { type: 'proceed_distribute', job_id: worker.jobId }
            : { type: 'skip_distribute', job_id: worker.jobId, reason: 'App crashed on launch' },
        );
        expect(verify.submissions).toHaveLength(1);
        expect(verify.submissions[0]).toContain(artifact.toString('base64'));
        expect(verify.submissions[0]).toMatch(/name="target"\r\n\r\nios-simulator\r\n/);
        worker.ws.close();
      } finally {
        await hub.stop();
        verify.server.close();
      }
    });
  }
});
