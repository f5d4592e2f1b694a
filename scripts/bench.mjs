// `npm run bench [-- name...]`: runs the benchmarks in test/bench. They print figures next to a
// baseline measured in the same run; they never pass or fail on timings.
//
// A benchmark is a plain Node script, `test/bench/<name>.bench.mjs`, run against the built
// packages (bootstrap builds first): benchmarks are not tests, and measuring the compiled code
// run the way an operator runs it keeps test tooling out of the figures. A `<name>.bench.ts`
// is run with vitest instead (test/bench/vitest.bench.config.ts), for benchmarks that need the
// test kit.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

const SUFFIXES = ['.bench.mjs', '.bench.ts'];

export async function runBench(root, names) {
  const dir = join(root, 'test', 'bench');
  const files = existsSync(dir) ? readdirSync(dir) : [];
  const available = [
    ...new Set(files.flatMap((f) => SUFFIXES.filter((s) => f.endsWith(s)).map((s) => f.slice(0, -s.length)))),
  ];
  const wanted = names.length > 0 ? names : available;
  const unknown = wanted.filter((n) => !available.includes(n));
  if (unknown.length > 0 || available.length === 0) {
    process.stderr.write(
      `unknown benchmark(s): ${unknown.join(', ') || '(none available)'}; available: ${available.join(', ') || 'none yet'}\n`,
    );
    return available.length === 0 && names.length === 0 ? 0 : 2;
  }
  let status = 0;
  for (const name of wanted) {
    const script = join(dir, `${name}.bench.mjs`);
    const r = existsSync(script)
      ? spawnSync(process.execPath, [script], { cwd: root, stdio: 'inherit' })
      : spawnSync(
          join(root, 'node_modules', '.bin', 'vitest'),
          ['run', '--config', join(dir, 'vitest.bench.config.ts'), join(dir, `${name}.bench.ts`)],
          { cwd: root, stdio: 'inherit' },
        );
    status ||= r.status ?? 1;
  }
  return status;
}
