#!/usr/bin/env node
// The `perry-hub` on the PATH (`npx perry-hub` from a clone, after `npm ci`): the compiled command,
// built first when a fresh clone has not been built yet. Plain JavaScript: it runs before the build.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const compiled = join(here, '..', 'dist', 'bin.js');
if (!existsSync(compiled)) {
  const root = join(here, '..', '..', '..');
  process.stderr.write('[perry-hub] first run: building (tsc -b)\n');
  const built = spawnSync(join(root, 'node_modules', '.bin', 'tsc'), ['-b'], { cwd: root, stdio: 'inherit' });
  if (built.status !== 0) {
    process.stderr.write('[perry-hub] the build failed; run `npm run build` in the repository and try again\n');
    process.exit(built.status ?? 1);
  }
}
await import(compiled);
