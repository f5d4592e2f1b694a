import { describe, expect, it } from 'vitest';
import { generateSealKey, openSealed, parseSealKeys, seal, SealError } from '../src/index.js';

describe('sealed values', () => {
  const [key] = parseSealKeys(generateSealKey());

  it('opens what it sealed, for the same context only', () => {
    const sealed = seal(key!, '{"apple_p8_key":"secret"}', 'job-1');
    expect(sealed.includes(Buffer.from('secret'))).toBe(false);
    expect(openSealed(key!, sealed, 'job-1').toString()).toBe('{"apple_p8_key":"secret"}');
    expect(() => openSealed(key!, sealed, 'job-2')).toThrow(SealError);
  });

  it('uses a fresh nonce each time and detects tampering', () => {
    const a = seal(key!, 'same', 'c');
    const b = seal(key!, 'same', 'c');
    expect(a.equals(b)).toBe(false);
    const tampered = Buffer.from(a);
    tampered[tampered.length - 1]! ^= 1;
    expect(() => openSealed(key!, tampered, 'c')).toThrow(/corrupt/);
    expect(() => openSealed(key!, Buffer.from('short'), 'c')).toThrow(/known version/);
  });

  it('rotates: the first key seals, every listed key opens', () => {
    const oldKey = generateSealKey();
    const newKey = generateSealKey();
    const before = seal(parseSealKeys(oldKey)[0]!, 'x', 'c');
    const keys = parseSealKeys(`${newKey}, ${oldKey}`);
    expect(openSealed(keys, before, 'c').toString()).toBe('x');
    expect(openSealed(keys, seal(keys[0]!, 'y', 'c'), 'c').toString()).toBe('y');
    expect(() => openSealed(parseSealKeys(newKey), before, 'c')).toThrow(/not configured/);
  });

  it('refuses malformed keys without echoing them, and never prints a key', () => {
    const bad = Buffer.alloc(16, 7).toString('base64');
    try {
      parseSealKeys(bad);
      expect.unreachable();
    } catch (err) {
      expect((err as SealError).code).toBe('SEAL_KEY_INVALID');
      expect((err as Error).message).not.toContain(bad);
    }
    expect(() => parseSealKeys('')).toThrow(SealError);
    expect(() => parseSealKeys('not base64!')).toThrow(SealError);
    const text = generateSealKey();
    const printed = JSON.stringify({ k: parseSealKeys(text)[0] });
    expect(printed).toBe('{"k":"[redacted]"}');
    expect(Buffer.from(text, 'base64')).toHaveLength(32);
  });
});

describe('sameSecret', () => {
  it('accepts only the whole secret, never a prefix, suffix or an empty expectation', async () => {
    const { sameSecret } = await import('../src/index.js');
    expect(sameSecret('s3cr3t', 's3cr3t')).toBe(true);
    expect(sameSecret('xs3cr3t', 's3cr3t')).toBe(false);
    expect(sameSecret('s3cr3', 's3cr3t')).toBe(false);
    expect(sameSecret('S3CR3T', 's3cr3t')).toBe(false);
    expect(sameSecret('', '')).toBe(false);
  });
});
