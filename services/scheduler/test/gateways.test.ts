import { describe, expect, it } from 'vitest';
import type { InstanceState } from '@perry-hub/runtime';
import { workersToRelease } from '../src/gateways.js';

describe('workersToRelease', () => {
  const states: Record<string, InstanceState> = { 'gw-live': 'live', 'gw-dead': 'dead', 'gw-new': 'unknown' };
  const workers = [
    { workerId: 'w1', gatewayId: 'gw-live' },
    { workerId: 'w2', gatewayId: 'gw-dead' },
    { workerId: 'w3', gatewayId: 'gw-new' },
    { workerId: 'w4', gatewayId: 'gw-dead' },
  ];
  const cases: [string, string[], string[]][] = [
    ['only the workers of a dead gateway', ['w1', 'w2', 'w3', 'w4'], ['w2', 'w4']],
    ['a live gateway keeps its workers (silence is the lost rule’s business)', ['w1'], []],
    ['an unknown gateway is not guessed dead', ['w3'], []],
  ];
  it.each(cases)('%s', (_name, ids, expected) => {
    const picked = workers.filter((w) => ids.includes(w.workerId));
    expect(workersToRelease(picked, (id) => states[id] ?? 'unknown')).toEqual(expected);
  });
});
