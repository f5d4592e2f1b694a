// Signing credentials are sealed at intake: a canary sent in `credentials` must appear nowhere
// afterwards, not in a MySQL dump, the JetStream store directory, the Object Store or the logs.
import type { RowDataPacket } from '@perry-hub/db';
import { randomBytes, randomUUID } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { subjects, topologyNames } from '@perry-hub/contracts';
import { BlobStore, openSealed } from '@perry-hub/runtime';
import { startIsolatedNats } from '@perry-hub/testkit';
import { ADMIN_SECRET, startIntakeHub } from './support/intake-hub.js';
import { cliManifest, perryPublish, send } from './support/perry-publish.js';

/** The canary, and its base64 forms at every alignment (credentials hold base64 fields too). */
function needles(canary: string): Buffer[] {
  const raw = Buffer.from(canary);
  const forms = [raw];
  for (let shift = 0; shift < 3; shift++) {
    const b64 = Buffer.concat([Buffer.alloc(shift), raw]).toString('base64');
    forms.push(Buffer.from(b64.slice(Math.ceil((shift * 4) / 3) + 2, -4)));
  }
  return forms;
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? filesUnder(path) : [path];
  });
}

function found(haystack: Buffer, canary: string): boolean {
  return needles(canary).some((needle) => haystack.includes(needle));
}

describe('credentials canary', () => {
  it('appears nowhere after HTTP, Bearer, NATS and failed submissions', { timeout: 120_000 }, async () => {
    const nats = await startIsolatedNats();
    const hub = await startIntakeHub({ natsUrl: nats.url });
    const canary = `CANARY-${randomBytes(12).toString('hex')}`;
    const credentials = JSON.stringify({
      apple_certificate_password: canary,
      apple_p8_key: `-----BEGIN PRIVATE KEY-----\n${canary}\n-----END PRIVATE KEY-----\n`,
      android_keystore_base64: Buffer.from(`keystore:${canary}`).toString('base64'),
    });
    const tarball = gzipSync(randomBytes(256 * 1024));
    // The search finds the canary in any of its forms, e.g. inside the base64 keystore field.
    expect(found(Buffer.from(credentials), canary)).toBe(true);
    for (const prefix of ['', 'x', 'xy']) {
      expect(found(Buffer.from(Buffer.from(`${prefix}${canary}!`).toString('base64')), canary)).toBe(true);
    }
    try {
      const register = await send(`${hub.url}/api/v1/license/register`, {
        headers: { 'content-type': 'application/json' },
        body: Buffer.from('{}'),
      });
      const licenseKey = (JSON.parse(register.body) as { license_key: string }).license_key;
      const accepted = await perryPublish(hub.url, { manifest: cliManifest(), credentials, tarball, licenseKey });
      expect(accepted.status).toBe(200);
      const jobId = (JSON.parse(accepted.body) as { job_id: string }).job_id;

      const account = await send(`${hub.url}/api/v1/account/create`, {
        headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN_SECRET}` },
        body: Buffer.from('{"github_id":"c","github_username":"c"}'),
      });
      const apiToken = (JSON.parse(account.body) as { api_token: string }).api_token;
      expect((await perryPublish(hub.url, { manifest: cliManifest(), credentials, tarball, apiToken })).status).toBe(
        200,
      );

      const blobs = await BlobStore.open(hub.nc, topologyNames(hub.prefix).blobsBucket);
      const upload = `uploads/${randomUUID()}`;
      await blobs.put(upload, Readable.from([tarball]));
      const viaNats = await hub.nc.request(
        subjects(hub.prefix).buildsSubmit,
        JSON.stringify({
          manifest: JSON.parse(cliManifest()),
          credentials: JSON.parse(credentials),
          license_key: licenseKey,
          tarball_object: upload,
        }),
        { timeout: 10_000 },
      );
      expect(viaNats.json()).toMatchObject({ ok: true });

      // Failures after the credentials were read: a broken credentials JSON, a bad license,
      // a non-gzip tarball. None may echo or keep them.
      const broken = `{"apple_certificate_password":"${canary}`;
      expect(
        (await perryPublish(hub.url, { manifest: cliManifest(), credentials: broken, tarball, licenseKey })).body,
      ).toBe('{"error":{"code":"BAD_REQUEST","message":"Invalid credentials JSON"}}');
      expect(
        (await perryPublish(hub.url, { manifest: cliManifest(), credentials, tarball, licenseKey: 'FREE-X' })).status,
      ).toBe(401);
      const notGzip = Buffer.from('not gzip');
      expect(
        (await perryPublish(hub.url, { manifest: cliManifest(), credentials, tarball: notGzip, licenseKey })).status,
      ).toBe(400);

      // The sealed value is there, and opens to the canary: the search below can find nothing.
      const [rows] = await hub.db.query<RowDataPacket[]>('SELECT credentials_enc FROM builds WHERE id = ?', [jobId]);
      const sealed = (rows[0] as { credentials_enc: Buffer }).credentials_enc;
      expect(openSealed(hub.sealKeys, sealed, jobId).toString()).toBe(credentials);

      // 1. MySQL dump of the whole database.
      const dump = spawnSync(
        'mariadb-dump',
        [
          `--host=${hub.database.host}`,
          `--port=${hub.database.port}`,
          `--user=${hub.database.user}`,
          ...(hub.database.password ? [`--password=${hub.database.password}`] : []),
          '--skip-ssl',
          hub.database.database,
        ],
        { maxBuffer: 256 * 1024 * 1024 },
      );
      expect(dump.status, dump.stderr.toString()).toBe(0);
      expect(dump.stdout.includes(Buffer.from('credentials_enc'))).toBe(true);
      expect(found(dump.stdout, canary)).toBe(false);

      // 2. Every file of the JetStream store directory.
      const storeFiles = filesUnder(nats.dataDir).filter((f) => !f.endsWith('nats.log'));
      expect(storeFiles.length).toBeGreaterThan(0);
      for (const file of storeFiles) expect(found(readFileSync(file), canary), file).toBe(false);

      // 3. Every object in the Object Store.
      for (const info of await blobs.list()) {
        const got = await blobs.get(info.name);
        const parts: Buffer[] = [];
        for await (const chunk of got!.stream) parts.push(chunk as Buffer);
        expect(found(Buffer.concat(parts), canary), info.name).toBe(false);
      }

      // 4. The logs (captured at trace level).
      expect(hub.logs().length).toBeGreaterThan(1000);
      expect(found(Buffer.from(hub.logs()), canary)).toBe(false);
    } finally {
      await hub.stop();
    }
  });
});
