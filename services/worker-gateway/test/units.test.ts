// The pure parts: hello defaults, the secret check, the update cool-down and the outbox's order.
import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { readHello, secretMatches } from '../src/hello.js';
import { UpdatePolicy } from '../src/updates.js';
import { Outbox } from '../src/outbox.js';
import type { IncomingMessage } from 'node:http';
import type { JobStatusReply } from '@perry-hub/contracts';
import { AddressList } from '@perry-hub/runtime';
import { AddressLimiter, addressKey, clientAddress } from '../src/addresses.js';
import { TokenBucket } from '../src/budget.js';
import { JobStatusLookup } from '../src/job-status.js';
import { Notices } from '../src/notices.js';

describe('worker_hello', () => {
  const accepted = (message: Record<string, unknown>, name = () => 'worker-1') => {
    const check = readHello(message, name);
    if (!check.ok) throw new Error(`refused: ${check.reason}`);
    return check.hello;
  };
  const refusal = (message: Record<string, unknown>) => {
    const check = readHello(message, () => 'worker-1');
    return check.ok ? undefined : check.reason;
  };

  it('takes the original defaults for absent fields', () => {
    let n = 0;
    const name = () => `worker-${++n}`;
    expect(accepted({ type: 'worker_hello' }, name)).toEqual({
      name: 'worker-1',
      capabilities: ['macos'],
      maxConcurrent: 1,
      perryVersion: '',
    });
    expect(accepted({ name: 'w', capabilities: ['windows-sign'], perry_version: '0.5.14' }, name)).toEqual({
      name: 'w',
      capabilities: ['windows-sign'],
      maxConcurrent: 1,
      perryVersion: '0.5.14',
    });
  });

  it("accepts the three Rust workers' real hellos (reference 8.2)", () => {
    const real = [
      '{"type":"worker_hello","capabilities":["linux","android","windows","ios","macos","tvos"],"name":"kamatera-fra","secret":"s3cr3t","perry_version":"0.5.14","max_concurrent":2}',
      '{"type":"worker_hello","capabilities":["macos-sign","ios-sign"],"name":"oakhost-tart","secret":"s3cr3t","perry_version":"0.5.14","max_concurrent":2}',
      '{"type":"worker_hello","capabilities":["windows-sign"],"name":"perry-sign-win","secret":"s3cr3t","perry_version":"0.5.14"}',
    ];
    expect(real.map((text) => accepted(JSON.parse(text) as Record<string, unknown>))).toEqual([
      {
        name: 'kamatera-fra',
        capabilities: ['linux', 'android', 'windows', 'ios', 'macos', 'tvos'],
        maxConcurrent: 2,
        perryVersion: '0.5.14',
      },
      { name: 'oakhost-tart', capabilities: ['macos-sign', 'ios-sign'], maxConcurrent: 2, perryVersion: '0.5.14' },
      { name: 'perry-sign-win', capabilities: ['windows-sign'], maxConcurrent: 1, perryVersion: '0.5.14' },
    ]);
  });

  it('refuses a bad name, unknown or malformed capabilities, and max_concurrent out of range', () => {
    for (const name of ['x'.repeat(129), 'has space', "o'brien", '-leading', 'nul\u0000', 'ünï', 42, ['a']]) {
      expect(refusal({ name }), JSON.stringify(name)).toMatch(/^name must be 1 to 128 characters/);
    }
    expect(accepted({ name: 'x'.repeat(128) }).name).toHaveLength(128);
    for (const capabilities of ['linux', [], [1], ['linux', 'beos'], ['LINUX'], {}, ['linux', null]]) {
      expect(refusal({ capabilities }), JSON.stringify(capabilities)).toMatch(/capabilities/);
    }
    for (const max_concurrent of [0, -1, 2.7, 65, 1e9, '3', true, Number.NaN]) {
      expect(refusal({ max_concurrent }), String(max_concurrent)).toMatch(
        /^max_concurrent must be an integer from 1 to 64/,
      );
    }
    expect(accepted({ max_concurrent: 64 }).maxConcurrent).toBe(64);
    for (const perry_version of ['v'.repeat(65), 'a b', 7]) {
      expect(refusal({ perry_version }), String(perry_version)).toMatch(/^perry_version/);
    }
  });

  it('compares secrets exactly, whatever their length', () => {
    expect(secretMatches('s3cr3t', 's3cr3t')).toBe(true);
    for (const wrong of ['s3cr3', 's3cr3t ', 'x', '', undefined, 42, null])
      expect(secretMatches('s3cr3t', wrong)).toBe(false);
    expect(secretMatches('', undefined)).toBe(true); // none configured: the original accepted everyone
  });
});

describe('update cool-down', () => {
  it('tells an outdated worker once per cool-down, by name', () => {
    let now = 0;
    let expected = '0.5.15';
    const policy = new UpdatePolicy({ cooldownMs: 1_000, expectedVersion: () => expected, now: () => now });
    expect(policy.atHello('a', '0.5.14')).toBe(true);
    expect(policy.atHello('a', '0.5.14')).toBe(false);
    expect(policy.atHello('b', '0.5.14')).toBe(true);
    expect(policy.atHello('c', '0.5.15')).toBe(false);
    expect(policy.atHello('d', '')).toBe(false);
    now = 1_000;
    expect(policy.atHello('a', '0.5.14')).toBe(true);
    expected = '';
    expect(policy.atHello('e', '0.5.14')).toBe(false);
  });
});

describe('outbox', () => {
  const silent = pino({ level: 'silent' });

  it('stores a burst as one entry per job, and a barrier waits for the entries before it', async () => {
    const done: string[] = [];
    const box = new Outbox({
      append: (jobId, events) =>
        new Promise((r) => setTimeout(() => (done.push(`${jobId}:${events.join('+')}`), r()), jobId === 'a' ? 20 : 1)),
      maxBatchEvents: 100,
      maxBatchBytes: 1_000,
      highWater: 1_000,
      onPressure: () => undefined,
      log: silent,
    });
    for (const [jobId, data] of [
      ['a', '1'],
      ['b', '1'],
      ['a', '2'],
      ['a', '3'],
      ['b', '2'],
    ] as const) {
      box.push({ kind: 'event', jobId, data });
    }
    box.push({ kind: 'barrier', run: async () => void done.push('barrier') });
    box.push({ kind: 'event', jobId: 'a', data: '4' });
    await box.idle();
    expect(done).toEqual(['b:1+2', 'a:1+2+3', 'barrier', 'a:4']);
  });

  it('what arrives while an entry is stored goes in the next one, within the limits, in order', async () => {
    const entries: string[][] = [];
    let release!: () => void;
    const box = new Outbox({
      append: async (_jobId, events) => {
        entries.push([...events]);
        if (entries.length === 1) await new Promise<void>((r) => (release = r));
      },
      maxBatchEvents: 3,
      maxBatchBytes: 8, // 'x-N' is 3 bytes and a separator: two fit
      highWater: 1_000,
      onPressure: () => undefined,
      log: silent,
    });
    box.push({ kind: 'event', jobId: 'j', data: 'x-0' });
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    for (let i = 1; i <= 5; i++) box.push({ kind: 'event', jobId: 'j', data: `x-${i}` });
    release();
    await box.idle();
    expect(entries).toEqual([['x-0'], ['x-1', 'x-2'], ['x-3', 'x-4'], ['x-5']]);
  });

  it('signals pressure past the high-water mark and relief below half of it', async () => {
    const pressure: boolean[] = [];
    const box = new Outbox({
      append: async () => undefined,
      maxBatchEvents: 1,
      maxBatchBytes: 1_000,
      highWater: 4,
      onPressure: (p) => pressure.push(p),
      log: silent,
    });
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    box.push({ kind: 'barrier', run: () => gate });
    for (let i = 0; i < 5; i++) box.push({ kind: 'event', jobId: 'j', data: String(i) });
    expect(pressure).toEqual([true]);
    release();
    await box.idle();
    expect(pressure).toEqual([true, false]);
  });
});

describe('the edge limits, pure parts', () => {
  it('a token bucket allows its burst, then its rate', () => {
    const bucket = new TokenBucket(10, 5, 0);
    expect(Array.from({ length: 7 }, () => bucket.take(1, 0))).toEqual([true, true, true, true, true, false, false]);
    expect(bucket.take(1, 50)).toBe(false); // half a token
    expect(bucket.take(1, 100)).toBe(true);
    expect(bucket.take(3, 10_000)).toBe(true); // refilled, but never above the burst
    expect(bucket.take(3, 10_000)).toBe(false);
  });

  it('addresses: IPv4-mapped as IPv4, IPv6 per /64, X-Forwarded-For only from a trusted proxy', () => {
    expect(addressKey('::ffff:127.0.0.2')).toBe('127.0.0.2');
    expect(addressKey('2001:db8:1:2:aaaa::1')).toBe('2001:db8:1:2::/64');
    expect(addressKey('2001:db8:1:2:bbbb:cccc:dddd:eeee')).toBe('2001:db8:1:2::/64');
    expect(addressKey('2001:db8::1')).toBe('2001:db8:0:0::/64');
    const req = (remoteAddress: string, xff?: string) =>
      ({ socket: { remoteAddress }, headers: xff ? { 'x-forwarded-for': xff } : {} }) as unknown as IncomingMessage;
    const proxies = AddressList.parse('10.0.0.1, 192.0.2.0/24');
    expect(clientAddress(req('10.0.0.1', 'forged, 203.0.113.7'), proxies)).toBe('203.0.113.7');
    expect(clientAddress(req('198.51.100.9', '203.0.113.7'), proxies)).toBe('198.51.100.9');
    expect(clientAddress(req('::ffff:10.0.0.1'), proxies)).toBe('10.0.0.1');
    expect(clientAddress(req('192.0.2.77', '203.0.113.8'), proxies)).toBe('203.0.113.8');
    expect(clientAddress(req('::ffff:192.0.2.77', '203.0.113.8'), proxies)).toBe('203.0.113.8');
    const limiter = new AddressLimiter(2);
    expect([limiter.acquire('a'), limiter.acquire('a'), limiter.acquire('a'), limiter.acquire('b')]).toEqual([
      true,
      true,
      false,
      true,
    ]);
    limiter.release('a');
    expect(limiter.acquire('a')).toBe(true);
  });

  it('job status: concurrent lookups share one request, answers are reused for the cache time', async () => {
    const asked: string[] = [];
    let answer!: (reply: JobStatusReply) => void;
    const lookup = new JobStatusLookup((jobId) => {
      asked.push(jobId);
      return new Promise((resolve) => (answer = resolve));
    }, 1_000);
    const waiting = Array.from({ length: 50 }, () => lookup.get('job-1'));
    expect(asked).toEqual(['job-1']);
    answer({ found: true, status: 'queued', position: 3 });
    expect(new Set(await Promise.all(waiting)).size).toBe(1);
    await lookup.get('job-1');
    expect(asked).toEqual(['job-1']);
    const later = lookup.get('job-1', Date.now() + 1_000);
    expect(asked).toEqual(['job-1', 'job-1']);
    answer({ found: true, status: 'running', position: 0 });
    expect(await later).toEqual({ found: true, status: 'running', position: 0 });
  });

  it('notices: the first of a kind is logged, the rest of the interval is one summary with a count', () => {
    const lines: { msg: string; count?: number }[] = [];
    const log = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line) as never) });
    const notices = new Notices(log, 1_000);
    for (let i = 0; i < 500; i++) notices.note('bad frame', { i });
    notices.note('other kind');
    expect(lines.map((l) => l.msg)).toEqual(['bad frame', 'other kind']);
    notices.flush(Date.now() + 1_000);
    expect(lines.slice(2)).toEqual([expect.objectContaining({ msg: 'bad frame (repeated)', count: 499 })]);
    notices.stop();
  });
});
