// The all-in-one for the .mjs benches: its own data directory and free ports, its output kept,
// resolved once it says it is up.
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';

export function freePort() {
  return new Promise((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/**
 * `perry-hub start` on private ports; `extra` adds or overrides variables.
 * BENCH_HUB_NODE_OPTIONS="--cpu-prof --cpu-prof-dir=/tmp/prof" profiles the hub (as in the dispatch bench).
 */
export async function startAllInOne(root, dataDir, extra = {}) {
  const http = await freePort();
  const env = {
    PATH: process.env.PATH ?? '',
    HOME: process.env.HOME ?? '/root',
    PERRY_HUB_DATA_DIR: dataDir,
    PERRY_HUB_HTTP_PORT: String(http),
    PERRY_HUB_LOCAL_NATS_PORT: String(await freePort()),
    PERRY_HUB_LOCAL_NATS_MONITOR_PORT: String(await freePort()),
    PERRY_HUB_LOCAL_DB_PORT: String(await freePort()),
    PERRY_HUB_LOG_LEVEL: 'warn',
    ...(process.env.PERRY_HUB_NATS_SERVER_BIN
      ? { PERRY_HUB_NATS_SERVER_BIN: process.env.PERRY_HUB_NATS_SERVER_BIN }
      : {}),
    ...extra,
  };
  const nodeArgs = (process.env.BENCH_HUB_NODE_OPTIONS ?? '').split(' ').filter(Boolean);
  const { HUB_NODE_FLAGS } = await import(join(root, 'libs/cli/dist/node-flags.js'));
  const child = spawn(process.execPath, [...HUB_NODE_FLAGS, ...nodeArgs, join(root, 'libs/cli/dist/bin.js'), 'start'], {
    cwd: root,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const deadline = Date.now() + 120_000;
  while (!out.includes('Perry Hub is up')) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`perry-hub did not start:\n${out}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return { child, url: `http://127.0.0.1:${http}` };
}
