#!/usr/bin/env node
// Set-up shared by `npm start`, `npm test` and `npm run bench`: installs what is missing (npm
// dependencies; nats-server and mariadb-server through apt-get when running as root), builds,
// then runs the requested mode. Plain JavaScript with no dependencies: it runs before they exist.
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const [mode = 'start', ...args] = process.argv.slice(2);
const quiet = {
  cwd: root,
  stdio: ['ignore', 'inherit', 'inherit'],
  env: { ...process.env, npm_config_loglevel: 'error' },
};

function say(line) {
  process.stderr.write(`[perry-hub] ${line}\n`);
}

function run(cmd, cmdArgs, options = {}) {
  const result = spawnSync(cmd, cmdArgs, { ...quiet, ...options });
  if (result.error) throw result.error;
  return result.status ?? 1;
}

function mustRun(cmd, cmdArgs, what) {
  const status = run(cmd, cmdArgs);
  if (status !== 0) {
    say(`${what} failed (exit ${status})`);
    process.exit(status);
  }
}

function ensureNodeModules() {
  const marker = join(root, 'node_modules', '.package-lock.json');
  const lock = join(root, 'package-lock.json');
  if (existsSync(marker) && statSync(marker).mtimeMs >= statSync(lock).mtimeMs) return;
  say('installing npm dependencies (npm ci)');
  mustRun('npm', ['ci', '--no-audit', '--no-fund'], 'npm ci');
}

const SYSTEM_PACKAGES = [
  { pkg: 'nats-server', binaries: ['nats-server'] },
  { pkg: 'mariadb-server', binaries: ['mariadbd', 'mariadb-install-db'] },
];

function onPath(binary) {
  const dirs = [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/usr/local/sbin', '/usr/bin'];
  return dirs.some((d) => d && existsSync(join(d, binary)));
}

function ensureSystemPackages() {
  const missing = SYSTEM_PACKAGES.filter((p) => !p.binaries.every(onPath)).map((p) => p.pkg);
  if (missing.length === 0) return;
  const command = `apt-get install -y ${missing.join(' ')}`;
  if (process.getuid?.() !== 0 || !onPath('apt-get')) {
    say(`missing system packages: ${missing.join(', ')}. Install them with: sudo ${command}`);
    process.exit(1);
  }
  say(`installing ${missing.join(', ')} with apt-get`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  mustRun('apt-get', ['update', '-qq'], 'apt-get update');
  mustRun('apt-get', ['install', '-y', '-qq', ...missing], command, { env });
}

function build() {
  mustRun(join(root, 'node_modules', '.bin', 'tsc'), ['-b'], 'build (tsc -b)');
}

ensureNodeModules();
ensureSystemPackages();

if (mode === 'start') {
  build();
  process.argv = [process.argv[0], join(root, 'libs/cli/dist/bin.js'), 'start', ...args];
  await import(join(root, 'libs/cli/dist/bin.js'));
} else if (mode === 'test') {
  const { runTests } = await import('./test.mjs');
  process.exitCode = await runTests(root, args);
} else if (mode === 'bench') {
  build();
  const { runBench } = await import('./bench.mjs');
  process.exitCode = await runBench(root, args);
} else {
  say(`unknown mode ${mode}`);
  process.exitCode = 2;
}
