// kill -9 of the ingest in the middle of an upload: no job record and no visible tarball remain,
// what the interrupted put wrote is swept, and the retried submission succeeds.
import type { RowDataPacket } from '@perry-hub/db';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstreamManager } from '@nats-io/jetstream';
import { topologyNames } from '@perry-hub/contracts';
import { getFreePort } from '@perry-hub/localstack';
import { BlobStore } from '@perry-hub/runtime';
import { sweepOrphans } from '@perry-hub/artifact-store';
import { startIntakeHub, type IntakeHub } from './support/intake-hub.js';
import { cliManifest, perryPublish, send } from './support/perry-publish.js';

const ROOT = join(import.meta.dirname, '..', '..');
const MiB = 1024 * 1024;

let hub: IntakeHub;

beforeAll(async () => {
  hub = await startIntakeHub({ services: ['license', 'scheduler'] });
}, 120_000);

afterAll(async () => {
  await hub?.stop();
});

/** The ingest as its own process, run from its TypeScript sources. */
async function startIngest(port: number): Promise<ChildProcess> {
  const child = spawn(
    process.execPath,
    [
      '--conditions=@perry-hub/source',
      '--import',
      join(ROOT, 'libs/localstack/test/support/register-ts.mjs'),
      join(ROOT, 'services/ingest/src/main.ts'),
    ],
    {
      cwd: ROOT,
      env: {
        PATH: process.env['PATH'] ?? '',
        ...hub.env,
        PERRY_HUB_HTTP_PORT: String(port),
        PERRY_HUB_LOG_LEVEL: 'info',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const deadline = Date.now() + 60_000;
  while (!output.includes('HTTP API listening')) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`ingest did not start:\n${output}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return child;
}

/** A 40 MiB gzip tarball, generated as it is sent, slowly enough to be killed mid-way. */
function slowTarball(onProgress: (sent: number) => void) {
  const chunk = Buffer.concat([Buffer.from([0x1f, 0x8b, 0x08]), randomBytes(MiB - 3)]);
  const length = 40 * MiB;
  return {
    length,
    chunks: async function* () {
      for (let sent = 0; sent < length; sent += chunk.length) {
        yield chunk;
        onProgress(sent + chunk.length);
        await new Promise((r) => setTimeout(r, 25));
      }
    },
  };
}

describe('kill -9 during an upload', () => {
  it('leaves no job and no visible tarball; the retry succeeds', { timeout: 120_000 }, async () => {
    const port = await getFreePort();
    let ingest = await startIngest(port);
    const url = `http://127.0.0.1:${port}`;
    const licenseKey = (
      JSON.parse(
        (
          await send(`${url}/api/v1/license/register`, {
            headers: { 'content-type': 'application/json' },
            body: Buffer.from('{}'),
          })
        ).body,
      ) as { license_key: string }
    ).license_key;
    const input = {
      manifest: cliManifest(),
      credentials: '{"apple_team_id":"T"}',
      licenseKey,
      headers: { 'idempotency-key': 'crash-1' },
    };

    let killedAt = 0;
    const interrupted = perryPublish(url, {
      ...input,
      tarball: slowTarball((sent) => {
        if (sent >= 12 * MiB && killedAt === 0) {
          killedAt = sent;
          ingest.kill('SIGKILL');
        }
      }),
    }).catch((err: Error) => err);
    const outcome = await interrupted;
    await new Promise<void>((resolve) =>
      ingest.exitCode !== null || ingest.signalCode !== null ? resolve() : ingest.once('exit', () => resolve()),
    );
    expect(ingest.signalCode).toBe('SIGKILL');
    expect(killedAt).toBeGreaterThan(0);
    expect(outcome instanceof Error || (outcome as { status: number }).status !== 200).toBe(true);

    const blobs = await BlobStore.open(hub.nc, topologyNames(hub.prefix).blobsBucket);
    const [none] = await hub.db.query<RowDataPacket[]>('SELECT COUNT(*) AS n FROM builds');
    expect(none[0]).toEqual({ n: 0 });
    expect(await blobs.list()).toEqual([]);

    // The interrupted put wrote chunks but no meta: invisible, and swept once old enough.
    const jsm = await jetstreamManager(hub.nc);
    const stream = `OBJ_${topologyNames(hub.prefix).blobsBucket}`;
    expect((await jsm.streams.info(stream)).state.messages).toBeGreaterThan(0);
    const swept = await sweepOrphans(
      { db: hub.db, blobs, jsm, log: pino({ level: 'silent' }) },
      60_000,
      Date.now() + 120_000,
    );
    expect(swept).toEqual({ tarballs: 0, uploads: 0, artifacts: 0, chunkSets: 1, tombstones: 0 });
    expect((await jsm.streams.info(stream)).state.messages).toBe(0);

    // Restart and retry, the same way: accepted.
    ingest = await startIngest(port);
    try {
      const tarball = Buffer.concat([Buffer.from([0x1f, 0x8b, 0x08]), randomBytes(4 * MiB)]);
      const retried = await perryPublish(url, { ...input, tarball });
      expect(retried.status).toBe(200);
      const jobId = (JSON.parse(retried.body) as { job_id: string }).job_id;
      const [rows] = await hub.db.query<RowDataPacket[]>('SELECT status, tarball_ref FROM builds');
      expect(rows).toEqual([{ status: 'queued', tarball_ref: `tarballs/${jobId}` }]);
      expect((await blobs.info(`tarballs/${jobId}`))!.size).toBe(tarball.length);
    } finally {
      ingest.kill('SIGTERM');
      await new Promise((r) => ingest.once('exit', r));
    }
  });
});
