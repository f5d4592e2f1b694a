import { describe, expect, it } from 'vitest';
import type { InstanceState } from '@perry-hub/runtime';
import { refusesJob, workersToRelease } from '../src/gateways.js';

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

describe('refusesJob', () => {
  const avoid = { workerName: 'linux-0', untilMs: 10_000 };
  const held = { ...avoid, holdUntilMs: 3_000 };
  type Avoid = { workerName: string; untilMs: number; holdUntilMs?: number };
  const cases: [string, { avoid?: Avoid } | undefined, string | undefined, number, boolean][] = [
    ['the worker that held it at the crash, within the window', { avoid }, 'linux-0', 9_999, true],
    ['the same worker after the window', { avoid }, 'linux-0', 10_000, false],
    ['another worker', { avoid }, 'linux-1', 0, false],
    ['another worker while the job waits for its own to claim it back', { avoid: held }, 'linux-1', 2_999, true],
    ['its own worker too: it claims the job back, it is not assigned it anew', { avoid: held }, 'linux-0', 2_999, true],
    ['anyone until the end of the wait is dealt with', { avoid: held }, 'linux-1', 3_000, true],
    ['another worker once the wait is over', { avoid }, 'linux-1', 3_000, false],
    ['a job never released by a crash', {}, 'linux-0', 0, false],
    ['a job no longer queued', undefined, 'linux-0', 0, false],
  ];
  it.each(cases)('%s', (_name, job, worker, now, expected) => {
    expect(refusesJob(job, worker, now)).toBe(expected);
  });
});
