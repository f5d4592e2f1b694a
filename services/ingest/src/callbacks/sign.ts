/**
 * Standard Webhooks signatures: `v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">` with the
 * key in the `whsec_` secret. JSON bodies are signed by the `standardwebhooks` package; a binary
 * body (an artifact) is signed over its raw bytes as the specification says, because that
 * package turns a Buffer into a UTF-8 string first (which changes bytes that are not UTF-8). For a
 * body that is valid UTF-8 both give the same signature (tested).
 */
import { createHmac } from 'node:crypto';
import { Webhook } from 'standardwebhooks';

export interface SignedHeaders {
  'webhook-id': string;
  'webhook-timestamp': string;
  'webhook-signature': string;
}

function key(secret: string): Buffer {
  return Buffer.from(secret.replace(/^whsec_/, ''), 'base64');
}

export function signJson(secret: string, id: string, at: Date, body: string): SignedHeaders {
  const signature = new Webhook(secret).sign(id, at, body);
  return {
    'webhook-id': id,
    'webhook-timestamp': String(Math.floor(at.getTime() / 1000)),
    'webhook-signature': signature,
  };
}

export function signBytes(secret: string, id: string, at: Date, body: Buffer): SignedHeaders {
  const timestamp = String(Math.floor(at.getTime() / 1000));
  const mac = createHmac('sha256', key(secret)).update(`${id}.${timestamp}.`).update(body).digest('base64');
  return { 'webhook-id': id, 'webhook-timestamp': timestamp, 'webhook-signature': `v1,${mac}` };
}
