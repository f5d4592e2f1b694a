// The kernel's counts the cost benchmark prints beside its CPU figures (build-cost.ts).
import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect } from 'vitest';
import { test } from '@perry-hub/testkit';
import { countersPer, cpuSecs, describeCounters, processCounters } from './build-cost.js';

describe('processCounters', () => {
  test("counts this process's writes and CPU as they happen", () => {
    const dir = mkdtempSync(join(tmpdir(), 'perry-hub-counters-'));
    try {
      const before = processCounters(process.pid);
      const fd = openSync(join(dir, 'f'), 'w');
      for (let i = 0; i < 200; i++) writeSync(fd, 'x');
      closeSync(fd);
      // Work the CPU until the kernel's clock (10 ms ticks) has seen it.
      const spinUntil = performance.now() + 100;
      while (performance.now() < spinUntil);
      const after = processCounters(process.pid);
      expect(after.writeCalls - before.writeCalls).toBeGreaterThanOrEqual(200);
      expect(after.userSecs + after.systemSecs).toBeGreaterThan(before.userSecs + before.systemSecs);
      expect(after.voluntarySwitches + after.involuntarySwitches).toBeGreaterThan(0);
      expect(cpuSecs(process.pid)).toBeGreaterThanOrEqual(after.userSecs + after.systemSecs);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a process that is gone, or none, counts nothing', () => {
    const gone = spawnSync(process.execPath, ['-e', '0']).pid;
    for (const pid of [gone, undefined]) {
      const counters = Object.values(processCounters(pid));
      expect(counters).toHaveLength(6);
      for (const value of counters) expect(value).toBe(0);
      expect(cpuSecs(pid)).toBe(0);
    }
  });

  test('per build: the differences divided, and how the benchmarks print them', () => {
    const before = {
      userSecs: 1,
      systemSecs: 0.5,
      readCalls: 100,
      writeCalls: 50,
      voluntarySwitches: 10,
      involuntarySwitches: 2,
    };
    const after = {
      userSecs: 1.2,
      systemSecs: 0.54,
      readCalls: 160,
      writeCalls: 90,
      voluntarySwitches: 30,
      involuntarySwitches: 10,
    };
    const per = countersPer(before, after, 4);
    expect(per.userSecs).toBeCloseTo(0.05);
    expect(per.systemSecs).toBeCloseTo(0.01);
    expect(per).toMatchObject({ readCalls: 15, writeCalls: 10, voluntarySwitches: 5, involuntarySwitches: 2 });
    expect(describeCounters(per)).toBe(
      'user 50.0 ms, system 10.0 ms, 15.0 reads, 10.0 writes, 7.0 switches (2.0 preempted)',
    );
  });
});
