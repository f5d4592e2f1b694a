// Every error of the original's `POST /api/v1/build` (reference 1.2 #9, 1.3), sent the way
// `perry publish` sends its request, with its code, status and message byte for byte.
import type { RowDataPacket } from '@perry-hub/db';
import { randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { topologyNames } from '@perry-hub/contracts';
import { BlobStore } from '@perry-hub/runtime';
import { startIntakeHub, type IntakeHub } from './support/intake-hub.js';
import { cliManifest, perryPublish, send, type Reply } from './support/perry-publish.js';

const TARBALL = gzipSync(randomBytes(64 * 1024));

let hub: IntakeHub;

beforeAll(async () => {
  hub = await startIntakeHub();
}, 120_000);

afterAll(async () => {
  await hub?.stop();
});

function json(body: Record<string, unknown>): Buffer {
  return Buffer.from(JSON.stringify(body));
}

async function register(): Promise<string> {
  const reply = await send(`${hub.url}/api/v1/license/register`, {
    headers: { 'content-type': 'application/json' },
    body: json({}),
  });
  return (JSON.parse(reply.body) as { license_key: string }).license_key;
}

function expectError(reply: Reply, status: number, error: Record<string, unknown>): void {
  expect({ status: reply.status, body: reply.body }).toEqual({ status, body: JSON.stringify({ error }) });
}

/** Every tarball in the bucket belongs to a recorded job: failed and duplicate uploads are gone. */
async function expectNoStrayTarballs(): Promise<void> {
  const blobs = await BlobStore.open(hub.nc, topologyNames(hub.prefix).blobsBucket);
  const names = (await blobs.list('tarballs/')).map((o) => o.name).sort();
  const [rows] = await hub.db.query<RowDataPacket[]>('SELECT tarball_ref FROM builds ORDER BY tarball_ref');
  expect(names).toEqual((rows as { tarball_ref: string }[]).map((r) => r.tarball_ref).sort());
}

function period(): string {
  const d = new Date();
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}`;
}

describe('errors of POST /api/v1/build (reference 1.2 #9, 1.3)', () => {
  const publish = (input: Partial<Parameters<typeof perryPublish>[1]>) =>
    perryPublish(hub.url, { manifest: cliManifest(), credentials: '{}', tarball: TARBALL, ...input });

  it('400 BAD_REQUEST Expected multipart/form-data', async () => {
    const reply = await send(`${hub.url}/api/v1/build`, {
      headers: { 'content-type': 'application/json' },
      body: json({ manifest: {} }),
    });
    expectError(reply, 400, { code: 'BAD_REQUEST', message: 'Expected multipart/form-data' });
  });

  it('400 BAD_REQUEST Failed to parse multipart body', async () => {
    const reply = await send(`${hub.url}/api/v1/build`, {
      headers: { 'content-type': 'multipart/form-data' },
      body: Buffer.from('--x\r\nContent-Disposition: form-data; name="manifest"\r\n\r\n{}\r\n--x--\r\n'),
    });
    expect(reply.status).toBe(400);
    expect(JSON.parse(reply.body)).toEqual({
      error: { code: 'BAD_REQUEST', message: expect.stringMatching(/^Failed to parse multipart body: /) },
    });
  });

  it("400 BAD_REQUEST Missing 'manifest' field", async () => {
    const body = Buffer.from(
      '--b\r\nContent-Disposition: form-data; name="credentials"\r\n\r\n{}\r\n--b\r\nContent-Disposition: form-data; name="license_key"\r\n\r\nFREE-1\r\n--b--\r\n',
    );
    const reply = await send(`${hub.url}/api/v1/build`, {
      headers: { 'content-type': 'multipart/form-data; boundary=b' },
      body,
    });
    expectError(reply, 400, { code: 'BAD_REQUEST', message: "Missing 'manifest' field" });
  });

  it("400 BAD_REQUEST Missing 'tarball_b64' field", async () => {
    const body = Buffer.from(
      `--b\r\nContent-Disposition: form-data; name="manifest"\r\n\r\n${cliManifest()}\r\n--b\r\nContent-Disposition: form-data; name="license_key"\r\n\r\nFREE-1\r\n--b--\r\n`,
    );
    const reply = await send(`${hub.url}/api/v1/build`, {
      headers: { 'content-type': 'multipart/form-data; boundary=b' },
      body,
    });
    expectError(reply, 400, { code: 'BAD_REQUEST', message: "Missing 'tarball_b64' field" });
  });

  it('400 BAD_REQUEST Invalid manifest JSON', async () => {
    expectError(await publish({ manifest: '{"app_name":', licenseKey: 'k' }), 400, {
      code: 'BAD_REQUEST',
      message: 'Invalid manifest JSON',
    });
  });

  it('400 BAD_REQUEST Invalid credentials JSON', async () => {
    expectError(await publish({ credentials: '{"apple_p8_key": "-----BEGIN', licenseKey: 'k' }), 400, {
      code: 'BAD_REQUEST',
      message: 'Invalid credentials JSON',
    });
  });

  it("400 BAD_REQUEST Missing 'license_key' field or Authorization header", async () => {
    expectError(await publish({}), 400, {
      code: 'BAD_REQUEST',
      message: "Missing 'license_key' field or Authorization header",
    });
  });

  it('401 AUTH_INVALID Invalid API token', async () => {
    expectError(await publish({ apiToken: 'not-a-token' }), 401, {
      code: 'AUTH_INVALID',
      message: 'Invalid API token',
    });
  });

  it('401 LICENSE_INVALID Invalid license key', async () => {
    const licenseKey = await register();
    expectError(await publish({ licenseKey: `${licenseKey} ` }), 401, {
      code: 'LICENSE_INVALID',
      message: 'Invalid license key',
    });
  });

  it('403 ACCOUNT_REQUIRED with login_url for a second project on a device license', async () => {
    const licenseKey = await register();
    expect((await publish({ licenseKey })).status).toBe(200);
    expectError(await publish({ licenseKey, manifest: cliManifest({ bundle_id: 'com.example.other' }) }), 403, {
      code: 'ACCOUNT_REQUIRED',
      message:
        "Free device licenses support one project. Run 'perry login' to create an account and publish multiple projects.",
      login_url: 'https://app.perryts.com/cli/authorize',
    });
  });

  it('429 PUBLISH_LIMIT_REACHED with usage once the monthly quota is used', async () => {
    const licenseKey = await register();
    await hub.db.query('INSERT INTO usage_counters (license_key, period, publishes) VALUES (?, ?, 15)', [
      licenseKey,
      period(),
    ]);
    expectError(await publish({ licenseKey }), 429, {
      code: 'PUBLISH_LIMIT_REACHED',
      message:
        "You've used 15/15 free publishes this month. Resets on the 1st. Run 'perry login' to upgrade to Pro ($19/mo, 50 publishes).",
      usage: { publishes: 15, limit: 15, period: period() },
    });
  });

  it('429 RATE_LIMITED after 5 builds in an hour on a free license', async () => {
    const licenseKey = await register();
    // Five different builds (five times the same one would be one build: a retry).
    for (let i = 0; i < 5; i++) {
      expect((await publish({ licenseKey, tarball: gzipSync(Buffer.from(`edit ${i}`)) })).status).toBe(200);
    }
    expectError(await publish({ licenseKey }), 429, {
      code: 'RATE_LIMITED',
      message: 'Hourly build limit reached (5 per hour)',
    });
  });

  it('413 UPLOAD_TOO_LARGE for a tarball above the tier limit (free: 50 MiB decoded)', async () => {
    const licenseKey = await register();
    const big = Buffer.concat([TARBALL.subarray(0, 10), Buffer.alloc(50 * 1024 * 1024 + 1 - 10)]);
    expectError(await publish({ licenseKey, tarball: big }), 413, {
      code: 'UPLOAD_TOO_LARGE',
      message: 'Tarball too large: the free tier allows 50 MiB',
    });
    const [rows] = await hub.db.query<RowDataPacket[]>('SELECT id FROM builds WHERE licenseKey = ?', [licenseKey]);
    expect(rows).toEqual([]);
    await expectNoStrayTarballs();
  });
});
