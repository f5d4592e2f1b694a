// `npm test`: formatting, build and type check, lint (module boundaries included), then every
// vitest suite against real nats-server and MariaDB processes. Ends with `N passed, M failed`.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export async function runTests(root, args) {
  const bin = (name) => join(root, 'node_modules', '.bin', name);
  const env = {
    ...process.env,
    NX_DAEMON: 'false',
    NX_NO_CLOUD: 'true',
    NX_TUI: 'false',
    npm_config_loglevel: 'error',
  };
  const step = (name, cmd, cmdArgs) => {
    process.stderr.write(`\n[perry-hub] ${name}\n`);
    const r = spawnSync(cmd, cmdArgs, { cwd: root, stdio: 'inherit', env });
    return { name, ok: r.status === 0 };
  };
  const checks = [
    step('format (prettier --check)', bin('prettier'), ['--check', '--log-level', 'warn', '.']),
    step('build and type check (tsc -b)', bin('tsc'), ['-b']),
    step('type check tests', bin('tsc'), ['-p', 'tsconfig.test.json']),
    // The dashboard's type check and static files: the browser tests load what this builds.
    step('dashboard build (tsc, vite build)', 'npm', [
      'run',
      'build',
      '--silent',
      '--workspace',
      '@perry-hub/dashboard',
    ]),
    step('lint (eslint through nx, with module boundaries)', bin('nx'), [
      'run-many',
      '-t',
      'lint',
      '--outputStyle=static',
    ]),
  ];
  const dir = mkdtempSync(join(tmpdir(), 'perry-hub-vitest-'));
  const report = join(dir, 'report.json');
  const tests = step('tests (vitest)', bin('vitest'), [
    'run',
    '--reporter=default',
    '--reporter=json',
    `--outputFile.json=${report}`,
    ...args,
  ]);
  let passed = 0;
  let failed = 0;
  let skipped = 0;
  try {
    const json = JSON.parse(readFileSync(report, 'utf8'));
    passed = json.numPassedTests;
    failed = json.numFailedTests;
    skipped = json.numPendingTests + json.numTodoTests;
    // A file that fails outside its tests (it does not load, or an afterAll hook fails) has no
    // failed test of its own; count it so the closing line never says 0 failed on a red run.
    failed += (json.testResults ?? []).filter(
      (r) => r.status === 'failed' && !(r.assertionResults ?? []).some((a) => a.status === 'failed'),
    ).length;
  } catch {
    failed += 1;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  // vitest failed without a failed test or file to show for it (an unhandled error): still a failure.
  if (!tests.ok && failed === 0) failed = 1;
  for (const c of checks) {
    if (c.ok) passed += 1;
    else failed += 1;
  }
  const ok = checks.every((c) => c.ok) && tests.ok && failed === 0;
  process.stdout.write(
    `\nchecks: ${checks.map((c) => `${c.name.split(' ')[0]} ${c.ok ? 'ok' : 'FAILED'}`).join(', ')}\n`,
  );
  process.stdout.write(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}\n`);
  return ok ? 0 : 1;
}
