// The command provider with real shell scripts that record their calls, driving a vm-controller
// started in-process; and the provider's own failure modes (timeouts, unreadable status).
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect } from 'vitest';
import { pino } from 'pino';
import { test, serviceEnv } from '@perry-hub/testkit';
import { launchService, loadConfig, type LaunchedService } from '@perry-hub/runtime';
import { vmController } from '../src/index.js';
import { commandProvider } from '../src/providers/command.js';
import { openBus, sleep, until } from './support/bus.js';

const log = pino({ level: 'silent' });
const WIN = 'windows-sign';
const IDLE_MS = 1_500;

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** start/stop/status scripts over a state file, each appending its call to calls.log. */
function scripts(): { dir: string; calls: () => string[] } {
  const dir = mkdtempSync(join(tmpdir(), 'perry-hub-vm-cmd-'));
  dirs.push(dir);
  const script = (name: string, body: string) => {
    const file = join(dir, name);
    writeFileSync(file, `#!/bin/sh\nset -e\nDIR="${dir}"\n${body}\n`);
    chmodSync(file, 0o755);
    return file;
  };
  script(
    'start.sh',
    [
      'echo "start $PERRY_HUB_VM_POOL $PERRY_HUB_VM_CAPABILITY $PERRY_HUB_VM_TARGET" >> "$DIR/calls.log"',
      'echo starting > "$DIR/state-$1"',
      // The VM "boots" in the background; its output must not hold the command's pipes open.
      '( sleep 0.4; echo running > "$DIR/state-$1" ) > /dev/null 2>&1 &',
    ].join('\n'),
  );
  script('stop.sh', ['echo "stop $1 $2 $3" >> "$DIR/calls.log"', 'echo deallocated > "$DIR/state-$1"'].join('\n'));
  script('status.sh', 'if [ -f "$DIR/state-$1" ]; then cat "$DIR/state-$1"; else echo deallocated; fi');
  return {
    dir,
    calls: () => {
      try {
        return readFileSync(join(dir, 'calls.log'), 'utf8').trim().split('\n').filter(Boolean);
      } catch {
        return [];
      }
    },
  };
}

function commandConfig(natsUrl: string, prefix: string, dir: string) {
  return loadConfig(vmController.config, {
    ...serviceEnv({ natsUrl, prefix }),
    PERRY_HUB_VM_PROVIDER: 'command',
    PERRY_HUB_VM_POOLS: 'windows-sign=lab-win-01',
    PERRY_HUB_VM_START_COMMAND: `${dir}/start.sh "$@"`,
    PERRY_HUB_VM_STOP_COMMAND: `${dir}/stop.sh "$@"`,
    PERRY_HUB_VM_STATUS_COMMAND: `${dir}/status.sh "$@"`,
    PERRY_HUB_VM_IDLE_MS: String(IDLE_MS),
    PERRY_HUB_VM_RECONCILE_MS: '200',
    PERRY_HUB_VM_TICK_MS: '100',
    PERRY_HUB_VM_DRAIN_CHECK_MS: '300',
    PERRY_HUB_VM_QUEUE_STALE_MS: '3000',
    PERRY_HUB_VM_LEASE_TTL_MS: '1500',
  });
}

describe('the command provider', () => {
  test('drives a VM through real scripts: one start on demand, one stop when idle', async ({ natsUrl, prefix }) => {
    const { dir, calls } = scripts();
    const bus = await openBus(natsUrl, prefix);
    let service: LaunchedService | undefined;
    try {
      service = await launchService(vmController, commandConfig(natsUrl, prefix, dir), log);
      await until('the controller to act', async () => (await bus.vm.get(WIN))?.operation === 'PUT');

      bus.depth(WIN, { queued: 1 });
      await until('the start script', () => calls().length === 1);
      bus.depth(WIN, { queued: 2 });
      await until('the VM to run', () => bus.states.find((s) => s.state.power === 'running'));
      await bus.workerUp('lab-1', WIN);
      bus.depth(WIN, { queued: 0, running: 2 });
      await bus.workerUp('lab-1', WIN, 2);
      await sleep(IDLE_MS + 800);
      expect(calls()).toEqual(['start windows-sign windows-sign lab-win-01']);

      bus.depth(WIN, { running: 0 });
      await bus.workerUp('lab-1', WIN, 0);
      await until('the stop script', () => calls().length === 2, 10_000);
      const stopping = await until('a stopping state', () => bus.states.find((s) => s.state.power === 'stopping'));
      await until('the VM deallocated', () =>
        bus.states.find((s) => s.state.power === 'deallocated' && s.at >= stopping.at),
      );
      await bus.workerDown('lab-1');
      await sleep(600);
      expect(calls()).toEqual([
        'start windows-sign windows-sign lab-win-01',
        'stop windows-sign windows-sign lab-win-01',
      ]);
    } finally {
      await service?.stop();
      await bus.close();
    }
  });

  test('a pre-warm hint starts the VM; when that first stage fails it goes idle and is stopped', async ({
    natsUrl,
    prefix,
  }) => {
    const { dir, calls } = scripts();
    const bus = await openBus(natsUrl, prefix);
    let service: LaunchedService | undefined;
    try {
      service = await launchService(vmController, commandConfig(natsUrl, prefix, dir), log);
      await until('the controller to act', async () => (await bus.vm.get(WIN))?.operation === 'PUT');
      bus.prewarm(WIN, 'job-7');
      await until('the start script', () => calls().length === 1);
      await until('the VM to run', () => bus.states.find((s) => s.state.power === 'running'));
      // While the cross-compile runs, the hint keeps the VM wanted.
      await sleep(IDLE_MS + 800);
      expect(calls()).toHaveLength(1);
      const failedAt = Date.now();
      bus.jobDone('job-7', 'failed');
      await until('the stop script', () => calls().length === 2, 10_000);
      expect(Date.now() - failedAt).toBeGreaterThanOrEqual(IDLE_MS);
      expect(calls()[1]).toBe('stop windows-sign windows-sign lab-win-01');
    } finally {
      await service?.stop();
      await bus.close();
    }
  });

  test('a command that overruns its timeout is killed and reported as a timeout', async () => {
    const provider = commandProvider({
      startCommand: 'sleep 30',
      stopCommand: 'true',
      statusCommand: 'echo running',
      timeoutMs: 300,
    });
    const pool = { pool: WIN, capability: WIN, target: 't' };
    const startedAt = Date.now();
    await expect(provider.start(pool, new AbortController().signal)).rejects.toMatchObject({
      code: 'VM_PROVIDER_TIMEOUT',
    });
    expect(Date.now() - startedAt).toBeLessThan(5_000);
  });

  test('an unreadable status, a failing command and an abandoned one have their own codes', async () => {
    const pool = { pool: WIN, capability: WIN, target: 't' };
    const garbled = commandProvider({
      startCommand: 'exit 3',
      stopCommand: 'sleep 30',
      statusCommand: 'echo banana',
      timeoutMs: 5_000,
    });
    await expect(garbled.status(pool)).rejects.toMatchObject({ code: 'VM_STATUS_UNRECOGNISED' });
    await expect(garbled.start(pool, new AbortController().signal)).rejects.toMatchObject({
      code: 'VM_PROVIDER_FAILED',
      summary: 'start command exited with 3',
    });
    const abort = new AbortController();
    const stopping = garbled.deallocate(pool, abort.signal);
    abort.abort();
    await expect(stopping).rejects.toMatchObject({ code: 'VM_OPERATION_ABORTED' });
    const words = commandProvider({
      startCommand: 'true',
      stopCommand: 'true',
      statusCommand: 'echo "Stopped (allocated)"',
      timeoutMs: 5_000,
    });
    expect(await words.status(pool)).toBe('deallocated');
  });
});
