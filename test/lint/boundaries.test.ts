// The architecture rule, checked through the real lint configuration: a service may import libs,
// never another service; only the perry-hub command may import services.
import { ESLint } from 'eslint';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..', '..');
const created: string[] = [];

async function lintNewFile(relativePath: string, source: string) {
  const file = join(root, relativePath);
  writeFileSync(file, source);
  created.push(file);
  const eslint = new ESLint({ cwd: root });
  const [result] = await eslint.lintFiles([file]);
  return result!.messages.map((m) => `${m.ruleId}: ${m.message}`);
}

afterEach(() => {
  for (const file of created.splice(0)) rmSync(file, { force: true });
});

describe('module boundaries', () => {
  it('fails lint when a service imports another service', async () => {
    const messages = await lintNewFile(
      'services/scheduler/src/zz-boundary-probe.ts',
      "import { ingest } from '@perry-hub/ingest';\nexport const probe = ingest.name;\n",
    );
    expect(messages.some((m) => m.startsWith('@nx/enforce-module-boundaries'))).toBe(true);
  });

  it('fails lint when a shared lib imports a service', async () => {
    const messages = await lintNewFile(
      'libs/runtime/src/zz-boundary-probe.ts',
      "import { scheduler } from '@perry-hub/scheduler';\nexport const probe = scheduler.name;\n",
    );
    expect(messages.some((m) => m.startsWith('@nx/enforce-module-boundaries'))).toBe(true);
  });

  it('lets a service import the shared libs', async () => {
    const messages = await lintNewFile(
      'services/scheduler/src/zz-boundary-probe.ts',
      "import { subjects } from '@perry-hub/contracts';\nexport const probe = subjects('perry').queueDepth;\n",
    );
    expect(messages).toEqual([]);
  });

  it('keeps the worker to the contracts: no runtime, no service', async () => {
    for (const [pkg, name] of [
      ['@perry-hub/runtime', 'call'],
      ['@perry-hub/worker-gateway', 'workerGateway'],
    ]) {
      const messages = await lintNewFile(
        'apps/worker/src/zz-boundary-probe.ts',
        `import { ${name} } from '${pkg}';\nexport const probe = ${name};\n`,
      );
      expect(messages.some((m) => m.startsWith('@nx/enforce-module-boundaries'))).toBe(true);
    }
    const ok = await lintNewFile(
      'apps/worker/src/zz-boundary-probe.ts',
      "import { CLIENT_TARGETS } from '@perry-hub/contracts';\nexport const probe = CLIENT_TARGETS;\n",
    );
    expect(ok).toEqual([]);
  });

  it('lets no service import the worker', async () => {
    const messages = await lintNewFile(
      'services/scheduler/src/zz-boundary-probe.ts',
      "import { main } from '@perry-hub/worker';\nexport const probe = main;\n",
    );
    expect(messages.some((m) => m.startsWith('@nx/enforce-module-boundaries'))).toBe(true);
  });

  it('lets the perry-hub command import services', async () => {
    const messages = await lintNewFile(
      'libs/cli/src/zz-boundary-probe.ts',
      "import { scheduler } from '@perry-hub/scheduler';\nexport const probe = scheduler.name;\n",
    );
    expect(messages).toEqual([]);
  });
});
