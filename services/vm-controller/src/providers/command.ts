/**
 * The command provider, for VMs outside Azure (another cloud, a hypervisor, a machine woken over
 * LAN): three shell commands, run with `sh -c`. Each gets the pool in its environment
 * (PERRY_HUB_VM_POOL, PERRY_HUB_VM_CAPABILITY, PERRY_HUB_VM_TARGET) and in `$1 $2 $3`.
 * start and stop succeed when they exit 0; status prints one word: running, starting, stopping,
 * stopped, deallocated (or deallocating, unknown). A command that overruns its timeout, or whose
 * operation the controller abandons, is killed with its whole process group.
 */
import { spawn } from 'node:child_process';
import type { VmPowerState } from '@perry-hub/contracts';
import type { PoolSpec } from '../settings.js';
import { ProviderError, powerFromWord, type VmProvider } from './types.js';

export interface CommandProviderOptions {
  startCommand: string;
  stopCommand: string;
  statusCommand: string;
  timeoutMs: number;
}

const MAX_OUTPUT_BYTES = 64 * 1024;

interface RunResult {
  stdout: string;
}

function run(
  what: string,
  command: string,
  pool: PoolSpec,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('sh', ['-c', command, 'sh', pool.pool, pool.capability, pool.target], {
      // The commands run with the controller's environment plus the pool's coordinates.
      env: {
        ...process.env,
        PERRY_HUB_VM_POOL: pool.pool,
        PERRY_HUB_VM_CAPABILITY: pool.capability,
        PERRY_HUB_VM_TARGET: pool.target,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    let stdout = '';
    let stderr = '';
    let ended: ProviderError | undefined;
    const kill = (error: ProviderError) => {
      ended ??= error;
      try {
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    };
    const timer = setTimeout(
      () =>
        kill(
          new ProviderError(
            'VM_PROVIDER_TIMEOUT',
            `${what} command timed out after ${timeoutMs} ms`,
            `${what} command timed out`,
          ),
        ),
      timeoutMs,
    );
    const onAbort = () =>
      kill(new ProviderError('VM_OPERATION_ABORTED', `${what} command abandoned`, `${what} command abandoned`));
    if (signal?.aborted) onAbort();
    signal?.addEventListener('abort', onAbort, { once: true });
    child.stdout.on('data', (chunk: Buffer) => {
      if (stdout.length < MAX_OUTPUT_BYTES) stdout += chunk.toString('utf8');
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString('utf8')).slice(-MAX_OUTPUT_BYTES);
    });
    const finish = (error: ProviderError | undefined) => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      if (error) reject(error);
      else resolve({ stdout });
    };
    child.on('error', (err) =>
      finish(
        new ProviderError(
          'VM_PROVIDER_FAILED',
          `${what} command could not run: ${err.message}`,
          `${what} command could not run`,
          { cause: err },
        ),
      ),
    );
    child.on('close', (code, sig) => {
      if (ended) return finish(ended);
      if (code === 0) return finish(undefined);
      const how = code === null ? `was killed by ${sig ?? 'a signal'}` : `exited with ${code}`;
      finish(
        new ProviderError(
          'VM_PROVIDER_FAILED',
          `${what} command ${how}: ${stderr.trim().slice(-500)}`,
          `${what} command ${how}`,
        ),
      );
    });
  });
}

export function commandProvider(options: CommandProviderOptions): VmProvider {
  return {
    kind: 'command',
    status: async (pool, signal): Promise<VmPowerState> => {
      const { stdout } = await run('status', options.statusCommand, pool, options.timeoutMs, signal);
      const word = stdout.trim().split(/\s+/)[0] ?? '';
      const power = powerFromWord(word);
      if (power === undefined) {
        throw new ProviderError(
          'VM_STATUS_UNRECOGNISED',
          `status command printed ${JSON.stringify(stdout.trim().slice(0, 200))}, not a power state`,
          'status command printed no power state',
        );
      }
      return power;
    },
    start: async (pool, signal) => {
      await run('start', options.startCommand, pool, options.timeoutMs, signal);
    },
    deallocate: async (pool, signal) => {
      await run('stop', options.stopCommand, pool, options.timeoutMs, signal);
    },
    close: async () => undefined,
  };
}
