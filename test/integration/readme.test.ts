// The README's configuration table is generated from the code; this keeps it from going stale.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { allVariables, configTable } from '@perry-hub/cli';

const readme = readFileSync(join(import.meta.dirname, '..', '..', 'README.md'), 'utf8');

describe('README', () => {
  it('documents every configuration variable with its default, as `perry-hub config --markdown` prints it', () => {
    expect(allVariables().length).toBeGreaterThan(40);
    expect(readme).toContain(configTable('markdown'));
  });

  it('names the two commands first', () => {
    const quickStart = readme.slice(readme.indexOf('## Quick start'));
    expect(quickStart.indexOf('npm start')).toBeGreaterThan(0);
    expect(quickStart.indexOf('npm test')).toBeGreaterThan(0);
  });
});
