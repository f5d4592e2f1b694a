// `POST /api/v1/build` driven by a client that speaks exactly like `perry publish`, across the
// real license service, scheduler and ingest: the accepted job, and every error of the
// original's route with its code, status and message, byte for byte.
import type { RowDataPacket } from '@perry-hub/db';
import { randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstreamManager } from '@nats-io/jetstream';
import { queuePositionEndpoint, subjects, topologyNames } from '@perry-hub/contracts';
import { BlobStore, call, openSealed } from '@perry-hub/runtime';
import { ADMIN_SECRET, startIntakeHub, type IntakeHub } from './support/intake-hub.js';
import { cliManifest, perryPublish, send } from './support/perry-publish.js';

const CREDENTIALS =
  '{"apple_team_id":"ABCDE12345","apple_signing_identity":null,"apple_key_id":"KEY1234567","apple_issuer_id":"69a6de70-0000-47e3-e053-5b8c7c11a4d1","apple_p8_key":"-----BEGIN PRIVATE KEY-----\\nMIGT\\n-----END PRIVATE KEY-----\\n"}';
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

/** Every tarball in the bucket belongs to a recorded job: failed and duplicate uploads are gone. */
async function expectNoStrayTarballs(): Promise<void> {
  const blobs = await BlobStore.open(hub.nc, topologyNames(hub.prefix).blobsBucket);
  const names = (await blobs.list('tarballs/')).map((o) => o.name).sort();
  const [rows] = await hub.db.query<RowDataPacket[]>('SELECT tarball_ref FROM builds ORDER BY tarball_ref');
  expect(names).toEqual((rows as { tarball_ref: string }[]).map((r) => r.tarball_ref).sort());
}

describe('perry publish against the hub', () => {
  it('gets {job_id, ws_url, position}; the job is recorded, sealed, stored and queued', async () => {
    const licenseKey = await register();
    const manifest = cliManifest({ build_type: 'plugin', future_key: { nested: [1, 2] } });
    const reply = await perryPublish(hub.url, { manifest, credentials: CREDENTIALS, tarball: TARBALL, licenseKey });
    expect(reply.status).toBe(200);
    expect(reply.headers['content-type']).toMatch(/^application\/json/);
    expect(reply.body).toMatch(/^\{"job_id":"[0-9a-f-]{36}","ws_url":"\/ws","position":1\}$/);
    const jobId = (JSON.parse(reply.body) as { job_id: string }).job_id;

    const [rows] = await hub.db.query<RowDataPacket[]>('SELECT * FROM builds WHERE id = ?', [jobId]);
    const row = rows[0] as Record<string, unknown>;
    expect(row).toMatchObject({
      licenseKey,
      tier: 'free',
      targets: '["ios"]',
      status: 'queued',
      priority: 1,
      attempt: 0,
      stage: 'build',
      tarball_ref: `tarballs/${jobId}`,
      account_id: null,
      idempotency_key: null,
    });
    // The manifest exactly as sent: unknown keys untouched for the workers.
    expect(row['manifest']).toBe(manifest);
    expect(openSealed(hub.sealKeys, row['credentials_enc'] as Buffer, jobId).toString()).toBe(CREDENTIALS);
    expect(Math.abs(Number(row['queuedAt']) - Date.now())).toBeLessThan(30_000);

    const blobs = await BlobStore.open(hub.nc, topologyNames(hub.prefix).blobsBucket);
    const stored = await blobs.get(`tarballs/${jobId}`);
    const parts: Buffer[] = [];
    for await (const chunk of stored!.stream) parts.push(chunk as Buffer);
    expect(Buffer.concat(parts).equals(TARBALL)).toBe(true);
    expect(await call(hub.nc, subjects(hub.prefix), queuePositionEndpoint, { jobId })).toEqual({ position: 1 });
  });

  it('Bearer auth with an account API token; the license_key field is then ignored', async () => {
    const created = await send(`${hub.url}/api/v1/account/create`, {
      headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN_SECRET}` },
      body: json({ github_id: 4242, github_username: 'octo' }),
    });
    const { api_token: apiToken, id } = JSON.parse(created.body) as { api_token: string; id: string };
    await send(`${hub.url}/api/v1/account/update`, {
      headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN_SECRET}` },
      body: json({ account_id: id, tier: 'pro' }),
    });
    const reply = await perryPublish(hub.url, {
      manifest: cliManifest({ targets: ['android'], bundle_id: 'com.example.droid' }),
      credentials: '{}',
      tarball: TARBALL,
      apiToken,
      licenseKey: 'ignored',
    });
    expect(reply.status).toBe(200);
    const jobId = (JSON.parse(reply.body) as { job_id: string }).job_id;
    const [rows] = await hub.db.query<RowDataPacket[]>('SELECT tier, priority, account_id FROM builds WHERE id = ?', [
      jobId,
    ]);
    expect(rows[0]).toEqual({ tier: 'pro', priority: 10, account_id: id });
  });

  it('takes a binary `tarball` part from new clients', async () => {
    const licenseKey = await register();
    const reply = await perryPublish(hub.url, {
      manifest: cliManifest({ targets: ['linux'] }),
      credentials: '{}',
      tarball: TARBALL,
      licenseKey,
      binary: true,
    });
    expect(reply.status).toBe(200);
    const jobId = (JSON.parse(reply.body) as { job_id: string }).job_id;
    const blobs = await BlobStore.open(hub.nc, topologyNames(hub.prefix).blobsBucket);
    expect((await blobs.info(`tarballs/${jobId}`))!.size).toBe(TARBALL.length);
  });

  it('returns the same job for a retried submission with the same Idempotency-Key', async () => {
    const licenseKey = await register();
    const input = {
      manifest: cliManifest({ targets: ['windows'] }),
      credentials: '{}',
      tarball: TARBALL,
      licenseKey,
      headers: { 'idempotency-key': 'retry-1' },
    };
    const first = await perryPublish(hub.url, input);
    const second = await perryPublish(hub.url, input);
    expect(first.status).toBe(200);
    expect(JSON.parse(second.body)).toEqual(JSON.parse(first.body));
    const [rows] = await hub.db.query<RowDataPacket[]>('SELECT COUNT(*) AS n FROM builds WHERE licenseKey = ?', [
      licenseKey,
    ]);
    expect(rows[0]).toEqual({ n: 1 });
    await expectNoStrayTarballs();
    expect(
      (await perryPublish(hub.url, { ...input, headers: { 'idempotency-key': 'bad key with spaces' } })).status,
    ).toBe(400);
  });
});

describe('the intake message', () => {
  it('carries the job on JetStream with Nats-Msg-Id = job id', async () => {
    const own = await startIntakeHub({ services: ['license', 'ingest'] });
    try {
      const licenseKey = await (async () => {
        const r = await send(`${own.url}/api/v1/license/register`, {
          headers: { 'content-type': 'application/json' },
          body: json({}),
        });
        return (JSON.parse(r.body) as { license_key: string }).license_key;
      })();
      const reply = await perryPublish(own.url, {
        manifest: cliManifest(),
        credentials: '{}',
        tarball: TARBALL,
        licenseKey,
      });
      // Without a scheduler the place is counted from MySQL.
      expect(JSON.parse(reply.body)).toMatchObject({ position: 1 });
      const jobId = (JSON.parse(reply.body) as { job_id: string }).job_id;
      const jsm = await jetstreamManager(own.nc);
      const msg = await jsm.streams.getMessage(topologyNames(own.prefix).intakeStream, {
        last_by_subj: subjects(own.prefix).intake(jobId),
      });
      expect(msg!.header.get('Nats-Msg-Id')).toBe(jobId);
      expect(msg!.json()).toEqual({
        jobId,
        licenseKey,
        tier: 'free',
        priority: 1,
        targets: ['ios'],
        queuedAt: expect.any(Number),
        via: 'http',
        // What the scheduler needs to queue and dispatch it without reading its row back.
        tarballRef: `tarballs/${jobId}`,
        payload: { manifest: cliManifest(), credentialsSealed: expect.any(String) },
      });
    } finally {
      await own.stop();
    }
  });
});
