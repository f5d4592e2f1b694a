// The artifact signature (over raw bytes) is the Standard Webhooks signature: for a body that is
// valid UTF-8 it equals the `standardwebhooks` package's, and the package verifies it.
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { Webhook } from 'standardwebhooks';
import { backoffMs } from '../src/callbacks/deliver.js';
import { signBytes, signJson } from '../src/callbacks/sign.js';

const SECRET = `whsec_${randomBytes(24).toString('base64')}`;

describe('callback signatures', () => {
  it('signs raw bytes as the package signs text', () => {
    const at = new Date(1_795_000_000_000);
    const body = '{"type":"build.succeeded","data":{"job_id":"j ✓"}}';
    const bytes = signBytes(SECRET, 'msg_1', at, Buffer.from(body));
    expect(bytes).toEqual(signJson(SECRET, 'msg_1', at, body));
    const now = new Date();
    expect(() =>
      new Webhook(SECRET).verify(body, signBytes(SECRET, 'msg_2', now, Buffer.from(body)) as never),
    ).not.toThrow();
  });

  it('binary bodies that are not UTF-8 get distinct signatures', () => {
    const at = new Date();
    const a = signBytes(SECRET, 'msg_3', at, Buffer.from([0xff, 0x00]));
    const b = signBytes(SECRET, 'msg_3', at, Buffer.from([0xfe, 0x00]));
    expect(a['webhook-signature']).not.toBe(b['webhook-signature']);
  });

  it('backs off exponentially: the defaults make 10 attempts over more than 2 hours', () => {
    const config = { maxAttempts: 10, backoffBaseMs: 30_000, backoffMaxMs: 7_200_000, timeoutMs: 30_000 };
    const waits = Array.from({ length: config.maxAttempts - 1 }, (_, i) => backoffMs(config, i + 1));
    expect(waits.slice(0, 4)).toEqual([30_000, 60_000, 120_000, 240_000]);
    const totalMs = waits.reduce((a, b) => a + b, 0);
    expect(totalMs).toBeGreaterThan(2 * 3_600_000);
    console.log(`default schedule: ${waits.map((w) => w / 1000).join(', ')} s; ${(totalMs / 3_600_000).toFixed(2)} h`);
  });
});
