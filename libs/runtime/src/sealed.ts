/**
 * Sealed secrets: signing credentials are encrypted at intake and opened only by the service that
 * hands them to a worker. AES-256-GCM with a random 96-bit nonce per value; the context (the job
 * id) is authenticated data, so a sealed value copied onto another job's row does not open.
 *
 * Layout: version (1 byte, 0x01) | key id (4 bytes) | nonce (12) | tag (16) | ciphertext.
 * The key id (the first bytes of SHA-256 of the key) lets a hub hold several keys during a
 * rotation: the first key seals, any listed key opens.
 *
 * Also here: `sameSecret`, the one way secrets (admin secret, tokens, keys) are compared.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes, timingSafeEqual } from 'node:crypto';

const VERSION = 0x01;
const KEY_BYTES = 32;
const KEY_ID_BYTES = 4;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const HEADER_BYTES = 1 + KEY_ID_BYTES + NONCE_BYTES + TAG_BYTES;

export class SealError extends Error {
  override readonly name = 'SealError';
  constructor(
    readonly code: 'SEAL_KEY_INVALID' | 'SEALED_INVALID' | 'SEAL_KEY_UNKNOWN',
    message: string,
  ) {
    super(message);
  }
}

/** A key ready for use. It prints as `[redacted]` so a stray log line cannot leak it. */
export interface SealKey {
  readonly id: Buffer;
  readonly key: Buffer;
}

function makeKey(key: Buffer): SealKey {
  const sealKey = { id: createHash('sha256').update(key).digest().subarray(0, KEY_ID_BYTES) } as SealKey;
  Object.defineProperty(sealKey, 'key', { value: key, enumerable: false });
  Object.defineProperty(sealKey, 'toJSON', { value: () => '[redacted]', enumerable: false });
  return sealKey;
}

/** A new random key in the configuration format (base64 of 32 bytes). */
export function generateSealKey(): string {
  return randomBytes(KEY_BYTES).toString('base64');
}

/**
 * Keys from configuration: base64 of 32 bytes each, comma-separated; the first one seals.
 * Throws SealError (never echoing the value) when one is malformed.
 */
export function parseSealKeys(text: string): SealKey[] {
  const parts = text
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean);
  if (parts.length === 0) throw new SealError('SEAL_KEY_INVALID', 'no key given');
  return parts.map((part, i) => {
    const key = Buffer.from(part, 'base64');
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(part) || key.length !== KEY_BYTES) {
      throw new SealError('SEAL_KEY_INVALID', `key ${i + 1} is not the base64 of ${KEY_BYTES} bytes`);
    }
    return makeKey(key);
  });
}

/** Encrypt `plaintext` for `context` (e.g. a job id). */
export function seal(key: SealKey, plaintext: Uint8Array | string, context: string): Buffer {
  const nonce = randomBytes(NONCE_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key.key, nonce);
  cipher.setAAD(Buffer.from(context, 'utf8'));
  const data = typeof plaintext === 'string' ? Buffer.from(plaintext, 'utf8') : plaintext;
  const body = Buffer.concat([cipher.update(data), cipher.final()]);
  return Buffer.concat([Buffer.of(VERSION), key.id, nonce, cipher.getAuthTag(), body]);
}

/** Decrypt a value sealed for `context` with any of `keys`. Throws SealError if it does not open. */
export function openSealed(keys: SealKey | readonly SealKey[], sealed: Uint8Array, context: string): Buffer {
  const data = Buffer.from(sealed.buffer, sealed.byteOffset, sealed.byteLength);
  if (data.length < HEADER_BYTES || data[0] !== VERSION) {
    throw new SealError('SEALED_INVALID', 'not a sealed value of a known version');
  }
  const id = data.subarray(1, 1 + KEY_ID_BYTES);
  const key = (Array.isArray(keys) ? keys : [keys]).find((k: SealKey) => k.id.equals(id));
  if (!key) throw new SealError('SEAL_KEY_UNKNOWN', 'sealed with a key that is not configured');
  const nonce = data.subarray(1 + KEY_ID_BYTES, 1 + KEY_ID_BYTES + NONCE_BYTES);
  const tag = data.subarray(1 + KEY_ID_BYTES + NONCE_BYTES, HEADER_BYTES);
  const decipher = createDecipheriv('aes-256-gcm', key.key, nonce);
  decipher.setAAD(Buffer.from(context, 'utf8'));
  decipher.setAuthTag(tag);
  try {
    return Buffer.concat([decipher.update(data.subarray(HEADER_BYTES)), decipher.final()]);
  } catch {
    throw new SealError('SEALED_INVALID', 'sealed value is corrupt or belongs to another context');
  }
}

/**
 * Compare a presented secret with the expected one, whole and in constant time: both are hashed
 * first, so neither the position of the first difference nor the length leaks. (The original
 * checked `endsWith(secret)`, which any `Bearer <anything><secret>` passed.)
 */
export function sameSecret(presented: string, expected: string): boolean {
  const a = createHash('sha256').update(presented, 'utf8').digest();
  const b = createHash('sha256').update(expected, 'utf8').digest();
  return timingSafeEqual(a, b) && expected.length > 0;
}
