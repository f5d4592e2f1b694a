// `npm run bench [-- name...]`: runs benchmarks from test/bench. They print figures next to a
// baseline measured in the same run; they never pass or fail on timings.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

export async function runBench(root, names) {
  const dir = join(root, 'test', 'bench');
  const available = existsSync(dir)
    ? readdirSync(dir)
        .filter((f) => f.endsWith('.bench.ts'))
        .map((f) => f.replace(/\.bench\.ts$/, ''))
    : [];
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
    const r = spawnSync(
      join(root, 'node_modules', '.bin', 'vitest'),
      ['run', '--config', join(dir, 'vitest.bench.config.ts'), join(dir, `${name}.bench.ts`)],
      {
        cwd: root,
        stdio: 'inherit',
      },
    );
    status ||= r.status ?? 1;
  }
  return status;
}
