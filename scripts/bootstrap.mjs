#!/usr/bin/env node
// Set-up shared by `npm start`, `npm test` and `npm run bench`: installs what is missing (npm
// dependencies; mariadb-server, and for tests and benches chromium, through apt-get when running
// as root; nats-server 2.10 from Debian 13's package into .tools/), builds (tsc -b, then the
// dashboard's vite build), then runs the requested mode. Plain JavaScript with no dependencies:
// it runs before they exist.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
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

// `modes`: only these modes need it (the dashboard's browser tests and its bench drive Debian's
// chromium through playwright-core).
const SYSTEM_PACKAGES = [
  { pkg: 'mariadb-server', binaries: ['mariadbd', 'mariadb-install-db'] },
  { pkg: 'chromium', binaries: ['chromium'], modes: ['test', 'bench'] },
];

// nats-server comes from Debian 13 (trixie): 2.10.27 has sync_interval, multi-filter consumers and
// the CVE-2023-47090 fix that Debian 12's 2.9.10 lacks. It depends only on libc6, so the .deb is
// unpacked into a project-local directory; the system's apt sources and packages stay untouched.
// The tests also validate infra/compose/ with Debian 13's docker-compose (2.26, only libc6 too):
// `docker compose config` checks a file against the compose specification without a Docker engine.
const SUITE = 'trixie';
const NATS = {
  pkg: 'nats-server',
  version: '2.10.27',
  dir: join(root, '.tools', 'nats-server'),
  binary: join('usr', 'sbin', 'nats-server'),
};
const COMPOSE = {
  pkg: 'docker-compose',
  version: '2.26.1',
  dir: join(root, '.tools', 'docker-compose'),
  binary: join('usr', 'libexec', 'docker', 'cli-plugins', 'docker-compose'),
};
const natsBinary = join(NATS.dir, NATS.binary);

function onPath(binary) {
  const dirs = [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/usr/local/sbin', '/usr/bin'];
  return dirs.some((d) => d && existsSync(join(d, binary)));
}

function ensureSystemPackages() {
  const missing = SYSTEM_PACKAGES.filter((p) => (p.modes ?? [mode]).includes(mode) && !p.binaries.every(onPath)).map(
    (p) => p.pkg,
  );
  if (missing.length === 0) return;
  const command = `apt-get install -y ${missing.join(' ')}`;
  if (process.getuid?.() !== 0 || !onPath('apt-get')) {
    say(`missing system packages: ${missing.join(', ')}. Install them with: sudo ${command}`);
    process.exit(1);
  }
  say(`installing ${missing.join(', ')} with apt-get`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  mustRun('apt-get', ['update', '-qq'], 'apt-get update');
  // Non-interactive, standard input closed (run's default): no prompt can wait for an answer.
  const status = run('apt-get', ['install', '-y', '-qq', ...missing], { env });
  if (status !== 0) {
    say(`${command} failed (exit ${status})`);
    process.exit(status);
  }
}

function versionOf(binary) {
  const r = spawnSync(binary, ['--version'], { encoding: 'utf8' });
  return r.status === 0 ? /v?(\d+\.\d+\.\d+)/.exec(r.stdout)?.[1] : undefined;
}

/** The URIs of the system's own Debian source (deb822 or one-line format), so no host is named here. */
function debianUris() {
  const uris = [];
  const dir = '/etc/apt/sources.list.d';
  const files = existsSync(dir) ? readdirSync(dir).map((f) => join(dir, f)) : [];
  for (const file of ['/etc/apt/sources.list', ...files]) {
    if (!existsSync(file) || !/(\.list|\.sources)$/.test(file)) continue;
    const text = readFileSync(file, 'utf8');
    for (const stanza of text.split(/\n\s*\n/)) {
      const field = (name) => new RegExp(`^${name}:\\s*(.+)$`, 'mi').exec(stanza)?.[1]?.trim() ?? '';
      if (/\bdeb\b/.test(field('Types')) && /\bmain\b/.test(field('Components')) && !/security/.test(field('Suites'))) {
        uris.push(...field('URIs').split(/\s+/));
      }
    }
    for (const line of text.split('\n')) {
      const m = /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)\s+.*\bmain\b/.exec(line.trim());
      if (m && !/security/.test(m[2])) uris.push(m[1]);
    }
  }
  return [...new Set(uris.filter((u) => /^https?:/.test(u) && /debian/.test(u)))];
}

/** Downloads Debian ${SUITE}'s package of `tool` with a private apt state and unpacks it into tool.dir. */
function ensureDebianTool(tool) {
  if (existsSync(join(tool.dir, tool.binary)) && versionOf(join(tool.dir, tool.binary)) === tool.version) return;
  const uris = debianUris();
  if (uris.length === 0) {
    say(
      `cannot install ${tool.pkg} ${tool.version}: no Debian source found in /etc/apt; install it by hand into ${tool.dir}`,
    );
    process.exit(1);
  }
  say(`installing ${tool.pkg} ${tool.version} (Debian ${SUITE}'s package) into .tools/`);
  const work = join(root, '.tools', 'apt');
  rmSync(work, { recursive: true, force: true });
  for (const d of ['lists/partial', 'cache/archives/partial', 'sources', 'deb'])
    mkdirSync(join(work, d), { recursive: true });
  writeFileSync(
    join(work, 'sources', `${SUITE}.sources`),
    `Types: deb\nURIs: ${uris.join(' ')}\nSuites: ${SUITE}\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n`,
  );
  const apt = [
    ...['Dir::State::Lists', 'lists', 'Dir::Cache', 'cache', 'Dir::Etc::SourceParts', 'sources'].flatMap((v, i, a) =>
      i % 2 === 0 ? ['-o', `${v}=${join(work, a[i + 1])}`] : [],
    ),
    '-o',
    'Dir::Etc::SourceList=/dev/null',
    '-o',
    'Debug::NoLocking=1',
    '-o',
    'APT::Sandbox::User=root',
    '-qq',
  ];
  mustRun('apt-get', [...apt, 'update'], `apt-get update (${SUITE})`);
  const status = run('apt-get', [...apt, 'download', tool.pkg], { cwd: join(work, 'deb') });
  if (status !== 0) {
    say(`apt-get download ${tool.pkg} failed (exit ${status})`);
    process.exit(status);
  }
  const deb = readdirSync(join(work, 'deb')).find((f) => f.endsWith('.deb'));
  if (!deb) throw new Error('apt-get download left no .deb');
  const staging = `${tool.dir}.new`;
  rmSync(staging, { recursive: true, force: true });
  mustRun('dpkg-deb', ['-x', join(work, 'deb', deb), staging], 'dpkg-deb -x');
  const got = versionOf(join(staging, tool.binary));
  if (got !== tool.version) {
    say(`the downloaded ${tool.pkg} is ${got ?? 'unusable'}, expected ${tool.version}`);
    process.exit(1);
  }
  rmSync(tool.dir, { recursive: true, force: true });
  renameSync(staging, tool.dir);
  rmSync(work, { recursive: true, force: true });
}

function build() {
  mustRun(join(root, 'node_modules', '.bin', 'tsc'), ['-b'], 'build (tsc -b)');
  buildDashboard();
}

/** The web dashboard's static files (apps/dashboard/dist, served by the ingest at /ui/). */
function buildDashboard() {
  mustRun('npm', ['run', 'build', '--silent', '--workspace', '@perry-hub/dashboard'], 'dashboard build (vite build)');
}

// `npm start` runs the hub; `npm start -- <command> ...` runs that perry-hub command unchanged
// (`npm start -- config`, `npm start -- submit .`). Commands that only talk to a hub over HTTP
// need no local servers installed.
const CLIENT_COMMANDS = new Set([
  'config',
  'nats-config',
  'submit',
  'licenses',
  'jobs',
  'job',
  'logs',
  'cancel',
  'workers',
  'queue',
  'vm',
  'worker',
  'help',
]);
const first = args.find((a) => !a.startsWith('-'));
const clientOnly =
  mode === 'start' &&
  (CLIENT_COMMANDS.has(first ?? '') || (first === undefined && args.some((a) => /^(-h|--help|-v|--version)$/.test(a))));

ensureNodeModules();
if (!clientOnly) {
  ensureSystemPackages();
  ensureDebianTool(NATS);
}
// Children (the hub, vitest, benches) find this nats-server first; see libs/localstack binaries.ts.
process.env['PERRY_HUB_NATS_SERVER_BIN'] ??= natsBinary;
if (mode === 'test') {
  ensureDebianTool(COMPOSE);
  process.env['PERRY_HUB_DOCKER_COMPOSE_BIN'] ??= join(COMPOSE.dir, COMPOSE.binary);
}

if (mode === 'start') {
  build();
  process.argv = [process.argv[0], join(root, 'libs/cli/dist/bin.js'), ...(args.length === 0 ? ['start'] : args)];
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
