// The README's configuration table is generated from the code; this keeps it from going stale.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { allVariables, configTable } from '@perry-hub/cli';
import { variablesTable } from '@perry-hub/worker';

const readme = readFileSync(join(import.meta.dirname, '..', '..', 'README.md'), 'utf8');

describe('README', () => {
  it('documents every configuration variable with its default, as `perry-hub config --markdown` prints it', () => {
    expect(allVariables().length).toBeGreaterThan(40);
    expect(readme).toContain(configTable('markdown'));
  });

  it('runs a worker in the commands it names, and names every worker variable', () => {
    const section = readme.slice(readme.indexOf('## Run a worker'), readme.indexOf('## Architecture'));
    expect(section).toContain('node libs/cli/dist/bin.js worker');
    expect(section).toContain('infra/systemd/perry-hub-worker.service');
    expect(section).toContain(variablesTable());
  });

  it('names the two commands first', () => {
    const quickStart = readme.slice(readme.indexOf('## Quick start'));
    expect(quickStart.indexOf('npm start')).toBeGreaterThan(0);
    expect(quickStart.indexOf('npm test')).toBeGreaterThan(0);
  });
});
