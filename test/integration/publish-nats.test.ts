// NATS-native submission on `<p>.builds.submit`: the tarball is uploaded to the Object Store
// first and named in the request; the same intake as HTTP records the job.
import type { RowDataPacket } from '@perry-hub/db';
import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { subjects, topologyNames, type RpcReply } from '@perry-hub/contracts';
import { BlobStore } from '@perry-hub/runtime';
import { startIntakeHub, type IntakeHub } from './support/intake-hub.js';
import { cliManifest, send } from './support/perry-publish.js';

let hub: IntakeHub;
let blobs: BlobStore;
let licenseKey: string;

beforeAll(async () => {
  hub = await startIntakeHub();
  blobs = await BlobStore.open(hub.nc, topologyNames(hub.prefix).blobsBucket);
  const reply = await send(`${hub.url}/api/v1/license/register`, {
    headers: { 'content-type': 'application/json' },
    body: Buffer.from('{}'),
  });
  licenseKey = (JSON.parse(reply.body) as { license_key: string }).license_key;
}, 120_000);

afterAll(async () => {
  await hub?.stop();
});

async function upload(data: Buffer = gzipSync(Buffer.from('project'))): Promise<string> {
  const name = `uploads/${randomUUID()}`;
  await blobs.put(name, Readable.from([data]));
  return name;
}

async function submit(request: Record<string, unknown>): Promise<RpcReply> {
  const msg = await hub.nc.request(subjects(hub.prefix).buildsSubmit, JSON.stringify(request), { timeout: 10_000 });
  return msg.json<RpcReply>();
}

const base = () => ({
  manifest: JSON.parse(cliManifest()) as Record<string, unknown>,
  credentials: {},
  license_key: licenseKey,
});

describe('<p>.builds.submit', () => {
  it('accepts an uploaded tarball and records the job like the HTTP route', async () => {
    const object = await upload();
    const reply = await submit({ ...base(), credentials: { apple_team_id: 'T' }, tarball_object: object });
    expect(reply).toEqual({
      ok: true,
      result: { job_id: expect.any(String), ws_url: '/ws', position: expect.any(Number) },
    });
    const jobId = (reply as { result: { job_id: string } }).result.job_id;
    const [rows] = await hub.db.query<RowDataPacket[]>('SELECT status, tier, tarball_ref FROM builds WHERE id = ?', [
      jobId,
    ]);
    expect(rows[0]).toEqual({ status: 'queued', tier: 'free', tarball_ref: `tarballs/${jobId}` });
    expect(await blobs.info(object)).toBeNull();
    expect((await blobs.info(`tarballs/${jobId}`))?.size).toBeGreaterThan(0);

    // Idempotent: a retry with the same key returns the same job and drops the new upload.
    const again = { ...base(), idempotency_key: 'nats-1' };
    const first = await submit({ ...again, tarball_object: await upload() });
    const retryUpload = await upload();
    const second = await submit({ ...again, tarball_object: retryUpload });
    expect(second).toEqual(first);
    expect(await blobs.info(retryUpload)).toBeNull();
  });

  it('refuses with the same errors as HTTP, in the bus envelope', async () => {
    const error = async (request: Record<string, unknown>) => ((await submit(request)) as { error: unknown }).error;
    expect(
      await error({ ...base(), manifest: { ...base().manifest, build_type: 'lib' }, tarball_object: await upload() }),
    ).toMatchObject({ code: 'BAD_REQUEST', message: expect.stringContaining('build_type') });
    expect(await error({ ...base(), tarball_object: `uploads/${randomUUID()}` })).toMatchObject({
      code: 'BAD_REQUEST',
      message: expect.stringMatching(/^Tarball object not found: uploads\//),
    });
    expect(await error({ ...base(), tarball_object: await upload(Buffer.from('not gzip')) })).toMatchObject({
      code: 'BAD_REQUEST',
      message: expect.stringMatching(/not gzip-compressed$/),
    });
    expect(await error({ ...base(), license_key: 'FREE-NOPE', tarball_object: await upload() })).toEqual({
      code: 'LICENSE_INVALID',
      message: 'Invalid license key',
      retry: 'never',
    });
    expect(await error({ ...base(), tarball_object: 'tarballs/someone-elses-job' })).toMatchObject({
      code: 'BAD_REQUEST',
    });
    expect(await error({ ...base(), tarball_object: await upload(), surprise: 1 })).toMatchObject({
      code: 'BAD_REQUEST',
    });
    const proto = JSON.parse('{"__proto__":{"x":1}}') as Record<string, unknown>;
    expect(
      await error({
        ...base(),
        manifest: { ...base().manifest, ios_info_plist: proto },
        tarball_object: await upload(),
      }),
    ).toMatchObject({ code: 'BAD_REQUEST', message: 'Invalid manifest: key "__proto__" is not allowed' });
    expect(await error({ manifest: base().manifest, tarball_object: await upload() })).toMatchObject({
      code: 'BAD_REQUEST',
      message: "Missing 'license_key' or 'api_token'",
    });
    const raw = await hub.nc.request(subjects(hub.prefix).buildsSubmit, 'not json', { timeout: 10_000 });
    expect(raw.json()).toEqual({
      ok: false,
      error: { code: 'BAD_REQUEST', message: 'Request is not JSON', retry: 'never' },
    });
  });
});
