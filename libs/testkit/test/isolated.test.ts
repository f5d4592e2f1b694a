import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { describe, expect, startIsolatedMariaDb, startIsolatedNats, test } from '../src/index.js';
import { connectTestNats } from '@perry-hub/testkit';

const supportDir = join(dirname(fileURLToPath(import.meta.url)), 'support');
let isolatedDir: string | undefined;

function gone(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return false;
  } catch {
    return true;
  }
}

describe('isolated servers', () => {
  test('a private nats-server survives kill -9 and restart with its data and port', async () => {
    const nats = await startIsolatedNats();
    isolatedDir = nats.dataDir;
    const nc = await connectTestNats(nats.url);
    const created = await nc.request(
      '$JS.API.STREAM.CREATE.KEEP',
      JSON.stringify({ name: 'KEEP', subjects: ['keep.>'], storage: 'file' }),
    );
    expect(created.json<{ error?: unknown }>().error).toBeUndefined();
    await nc.close();

    process.kill(nats.pid, 'SIGKILL');
    await nats.exited;
    const again = await nats.restart();
    expect(again.port).toBe(nats.port);
    const nc2 = await connectTestNats(again.url);
    const info = await nc2.request('$JS.API.STREAM.INFO.KEEP', '');
    expect(info.json<{ config?: { name?: string } }>().config?.name).toBe('KEEP');
    await nc2.close();
  });

  test('is removed when the test that started it ends', () => {
    expect(isolatedDir).toBeDefined();
    expect(existsSync(isolatedDir!)).toBe(false);
  });

  test('a private MariaDB starts and restarts', async () => {
    const db = await startIsolatedMariaDb();
    const again = await db.restart();
    expect(again.port).toBe(db.port);
    expect(again.dataDir).toBe(db.dataDir);
  });
});

describe('process exit', () => {
  test('a SIGTERMed test process leaves no servers and no temp dir behind', async () => {
    const child = spawn(
      process.execPath,
      ['--conditions=@perry-hub/source', '--import', '../../../localstack/test/support/register-ts.mjs', 'child.ts'],
      { cwd: supportDir, stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const line = await new Promise<string>((resolve, reject) => {
      createInterface({ input: child.stdout! }).once('line', resolve);
      child.once('exit', (code) => reject(new Error(`child exited early (${code})`)));
    });
    const started = JSON.parse(line) as { natsPid: number; mariadbPid: number; storeDir: string };
    const root = started.storeDir.split('/').slice(0, 3).join('/');
    expect(existsSync(root)).toBe(true);
    child.kill('SIGTERM');
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && (existsSync(root) || !gone(started.natsPid) || !gone(started.mariadbPid))) {
      await sleep(100);
    }
    expect(existsSync(root)).toBe(false);
    expect(gone(started.natsPid) && gone(started.mariadbPid)).toBe(true);
  });
});
