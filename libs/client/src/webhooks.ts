/**
 * Verifying the hub's signed callbacks (Standard Webhooks): `webhook-id`, `webhook-timestamp`,
 * `webhook-signature` = `v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">`. A JSON event is
 * verified by the `standardwebhooks` package; an artifact (binary body) over its raw bytes, which
 * that package cannot do (it reads a Buffer as UTF-8 text). De-duplicate by `webhook-id`: it is
 * the same on every retry of a delivery.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { Webhook } from 'standardwebhooks';
import { HubClientError, sha256Hex } from './common.js';

type Headers = Record<string, string | string[] | undefined>;

const header = (headers: Headers, name: string): string => {
  const value = headers[name] ?? headers[name.toLowerCase()];
  return (Array.isArray(value) ? value[0] : value) ?? '';
};

export interface VerifiedArtifact {
  readonly webhookId: string;
  readonly jobId: string;
  readonly target: string;
  readonly name: string;
  readonly size: number;
  readonly sha256: string;
}

/** Verify a JSON event callback; returns the event (`{type, timestamp, data}`). */
export function verifyEventWebhook(secret: string, headers: Headers, body: string): Record<string, unknown> {
  const plain = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), String(v)]));
  try {
    return new Webhook(secret).verify(body, plain) as Record<string, unknown>;
  } catch (err) {
    throw new HubClientError('WEBHOOK_INVALID', (err as Error).message);
  }
}

/**
 * Verify an artifact callback: the signature over the raw body, its timestamp within
 * `toleranceSecs`, and the body against the size and SHA-256 headers.
 */
export function verifyArtifactWebhook(
  secret: string,
  headers: Headers,
  body: Buffer,
  { toleranceSecs = 300, now = Date.now() }: { toleranceSecs?: number; now?: number } = {},
): VerifiedArtifact {
  const id = header(headers, 'webhook-id');
  const timestamp = header(headers, 'webhook-timestamp');
  if (!id || !/^\d+$/.test(timestamp)) throw new HubClientError('WEBHOOK_INVALID', 'missing webhook headers');
  if (Math.abs(now / 1000 - Number(timestamp)) > toleranceSecs) {
    throw new HubClientError('WEBHOOK_INVALID', 'timestamp too old or too new');
  }
  const expected = createHmac('sha256', Buffer.from(secret.replace(/^whsec_/, ''), 'base64'))
    .update(`${id}.${timestamp}.`)
    .update(body)
    .digest();
  const ok = header(headers, 'webhook-signature')
    .split(' ')
    .some((s) => {
      const [version, sig] = s.split(',');
      const given = Buffer.from(sig ?? '', 'base64');
      return version === 'v1' && given.length === expected.length && timingSafeEqual(given, expected);
    });
  if (!ok) throw new HubClientError('WEBHOOK_INVALID', 'no matching signature');
  const size = Number(header(headers, 'x-perry-artifact-size'));
  const sha256 = header(headers, 'x-perry-artifact-sha256');
  if (body.length !== size || sha256Hex(body) !== sha256) {
    throw new HubClientError('CHECKSUM', 'the body does not match its size and SHA-256 headers');
  }
  return {
    webhookId: id,
    jobId: header(headers, 'x-perry-job-id'),
    target: header(headers, 'x-perry-target'),
    name: decodeURIComponent(header(headers, 'x-perry-artifact-name')),
    size,
    sha256,
  };
}
