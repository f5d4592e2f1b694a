import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { Lifecycle } from '../src/index.js';

const log = pino({ level: 'silent' });

describe('Lifecycle', () => {
  it('closes stages in the order they were added, once, however often stop is called', async () => {
    const calls: string[] = [];
    const lc = new Lifecycle({ graceMs: 1000, forceMs: 1000, log });
    for (const name of ['intake', 'nats', 'mysql']) {
      lc.add({ name, close: async () => void calls.push(name) });
    }
    const [a, b] = [lc.stop(), lc.stop()];
    expect(a).toBe(b);
    expect(await a).toBe('clean');
    expect(await lc.stop()).toBe('clean');
    expect(calls).toEqual(['intake', 'nats', 'mysql']);
    expect(lc.history).toEqual(['intake', 'nats', 'mysql']);
  });

  it('goes on with the next stage when one fails', async () => {
    const lc = new Lifecycle({ graceMs: 1000, forceMs: 1000, log });
    lc.add({ name: 'a', close: async () => Promise.reject(new Error('boom')) });
    lc.add({ name: 'b', close: async () => undefined });
    expect(await lc.stop()).toBe('clean');
    expect(lc.history).toEqual(['a', 'b']);
  });

  it('forces every stage after the grace deadline', async () => {
    const forced: string[] = [];
    const lc = new Lifecycle({ graceMs: 50, forceMs: 1000, log });
    lc.add({ name: 'hangs', close: () => new Promise(() => undefined), force: () => void forced.push('hangs') });
    lc.add({ name: 'after', close: async () => undefined, force: () => void forced.push('after') });
    expect(await lc.stop()).toBe('forced');
    expect(forced).toEqual(['hangs', 'after']);
  });

  it('gives up after the force deadline so the process can exit', async () => {
    const lc = new Lifecycle({ graceMs: 20, forceMs: 20, log });
    lc.add({ name: 'stuck', close: () => new Promise(() => undefined), force: () => new Promise(() => undefined) });
    expect(await lc.stop()).toBe('abandoned');
    await expect(lc.stopped).resolves.toBe('abandoned');
  });
});
