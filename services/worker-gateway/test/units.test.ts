// The pure parts: hello defaults, the secret check, the update cool-down and the outbox's order.
import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { readHello, secretMatches } from '../src/hello.js';
import { UpdatePolicy } from '../src/updates.js';
import { Outbox } from '../src/outbox.js';

describe('worker_hello', () => {
  it('takes the original defaults', () => {
    let n = 0;
    const name = () => `worker-${++n}`;
    expect(readHello({ type: 'worker_hello' }, name)).toEqual({
      name: 'worker-1',
      capabilities: ['macos'],
      maxConcurrent: 1,
      perryVersion: '',
    });
    expect(readHello({ name: 'w', capabilities: ['windows-sign'], perry_version: '0.5.14' }, name)).toEqual({
      name: 'w',
      capabilities: ['windows-sign'],
      maxConcurrent: 1,
      perryVersion: '0.5.14',
    });
    expect(readHello({ max_concurrent: 0 }, name).maxConcurrent).toBe(1);
    expect(readHello({ max_concurrent: '3' }, name).maxConcurrent).toBe(1);
    expect(readHello({ max_concurrent: 2.7 }, name).maxConcurrent).toBe(2);
    expect(readHello({ capabilities: 'linux' }, name).capabilities).toEqual(['macos']);
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
  it('pipelines appends, but a barrier waits for all of them', async () => {
    const done: string[] = [];
    const box = new Outbox({
      window: 4,
      highWater: 1_000,
      onPressure: () => undefined,
      log: pino({ level: 'silent' }),
    });
    const delays = [30, 5, 20, 1, 10];
    delays.forEach((ms, i) =>
      box.push({ kind: 'append', append: () => new Promise((r) => setTimeout(() => (done.push(`a${i}`), r()), ms)) }),
    );
    box.push({ kind: 'barrier', run: async () => void done.push('barrier') });
    box.push({ kind: 'append', append: async () => void done.push('after') });
    await box.idle();
    expect(done.slice(0, 5).sort()).toEqual(['a0', 'a1', 'a2', 'a3', 'a4']);
    expect(done.slice(5)).toEqual(['barrier', 'after']);
  });

  it('signals pressure past the high-water mark and relief below half of it', async () => {
    const pressure: boolean[] = [];
    const box = new Outbox({
      window: 1,
      highWater: 4,
      onPressure: (p) => pressure.push(p),
      log: pino({ level: 'silent' }),
    });
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    box.push({ kind: 'barrier', run: () => gate });
    for (let i = 0; i < 5; i++) box.push({ kind: 'append', append: async () => undefined });
    expect(pressure).toEqual([true]);
    release();
    await box.idle();
    expect(pressure).toEqual([true, false]);
  });
});
