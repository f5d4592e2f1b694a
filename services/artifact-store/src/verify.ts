/**
 * Hands a job's last artifact to perry-verify as the original did: a multipart POST to
 * `<PERRY_VERIFY_URL>/verify` with the artifact's base64 as the `binary_b64` file part, the
 * platform, and the original's fixed config and manifest. The body is streamed from the Object
 * Store, never held whole.
 */
import { Readable } from 'node:stream';
import { randomBytes } from 'node:crypto';
import { HubError, submitVerificationEndpoint } from '@perry-hub/contracts';
import type { Pool, RowDataPacket } from '@perry-hub/db';
import { base64Encoder, handle, type BlobStore, type BoundEndpoint } from '@perry-hub/runtime';

const CONFIG = JSON.stringify({ auth: { strategy: 'none' } });
const MANIFEST = JSON.stringify({ appType: 'gui', hasAuthGate: false, entryScreen: 'main' });

export function verifyEndpoints(deps: { db: Pool; blobs: BlobStore }): BoundEndpoint[] {
  return [
    handle(submitVerificationEndpoint, async ({ jobId, attempt, verifyUrl, target }) => {
      const [rows] = await deps.db.query<RowDataPacket[]>(
        'SELECT object_name FROM artifacts WHERE job_id = ? AND attempt = ? ORDER BY created_at DESC LIMIT 1',
        [jobId, attempt],
      );
      const found = rows[0] ? await deps.blobs.get(String(rows[0]['object_name'])) : null;
      if (!found) throw new HubError('NOT_FOUND', `No artifact to verify for job ${jobId}`);
      const boundary = `perryhub${randomBytes(12).toString('hex')}`;
      const field = (name: string, value: string) =>
        `--${boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`;
      async function* body(): AsyncGenerator<Buffer> {
        yield Buffer.from(
          `--${boundary}\r\nContent-Disposition: form-data; name="binary_b64"; filename="artifact.b64"\r\nContent-Type: text/plain\r\n\r\n`,
        );
        for await (const chunk of found!.stream.pipe(base64Encoder())) yield chunk as Buffer;
        yield Buffer.from(
          `\r\n${field('target', target)}${field('config', CONFIG)}${field('manifest', MANIFEST)}--${boundary}--\r\n`,
        );
      }
      const res = await fetch(`${verifyUrl.replace(/\/+$/, '')}/verify`, {
        method: 'POST',
        headers: { 'content-type': `multipart/form-data; boundary=${boundary}` },
        body: Readable.from(body()) as unknown as ReadableStream,
        duplex: 'half',
        signal: AbortSignal.timeout(30_000),
      } as RequestInit);
      const text = await res.text();
      const id = /"id"\s*:\s*"([^"]+)"/.exec(text)?.[1];
      if (!res.ok || !id) throw new HubError('UPSTREAM_TIMEOUT', `perry-verify refused the submission (${res.status})`);
      return { verificationId: id };
    }),
  ];
}
