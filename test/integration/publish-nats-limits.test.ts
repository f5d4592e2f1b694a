// The per-license submission limit holds for NATS-native submissions too: a tool cannot go
// around the HTTP edge's count by submitting on `<p>.builds.submit`.
import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { subjects, topologyNames, type RpcReply } from '@perry-hub/contracts';
import { BlobStore } from '@perry-hub/runtime';
import { startIntakeHub, type IntakeHub } from './support/intake-hub.js';
import { cliManifest, send } from './support/perry-publish.js';

let hub: IntakeHub;
let blobs: BlobStore;

beforeAll(async () => {
  hub = await startIntakeHub({ env: { PERRY_HUB_SUBMISSIONS_PER_LICENSE_MAX_PER_HOUR: '2' } });
  blobs = await BlobStore.open(hub.nc, topologyNames(hub.prefix).blobsBucket);
}, 120_000);

afterAll(async () => {
  await hub?.stop();
});

async function register(): Promise<string> {
  const reply = await send(`${hub.url}/api/v1/license/register`, {
    headers: { 'content-type': 'application/json' },
    body: Buffer.from('{}'),
  });
  return (JSON.parse(reply.body) as { license_key: string }).license_key;
}

async function submit(licenseKey: string): Promise<RpcReply> {
  const object = `uploads/${randomUUID()}`;
  await blobs.put(object, Readable.from([gzipSync(Buffer.from('project'))]));
  const request = { manifest: JSON.parse(cliManifest()) as unknown, credentials: {}, license_key: licenseKey };
  const msg = await hub.nc.request(
    subjects(hub.prefix).buildsSubmit,
    JSON.stringify({ ...request, tarball_object: object }),
    { timeout: 10_000 },
  );
  return msg.json<RpcReply>();
}

it('a license past its submissions per hour is refused on NATS as over HTTP; another license is not', async () => {
  const [first, second] = [await register(), await register()];
  expect((await submit(first)).ok).toBe(true);
  expect((await submit(first)).ok).toBe(true);
  expect(await submit(first)).toEqual({
    ok: false,
    error: {
      code: 'RATE_LIMITED',
      message: 'Submission limit reached (2 per hour for one license)',
      retry: 'retry-later',
    },
  });
  expect((await submit(second)).ok).toBe(true);
});
