#!/usr/bin/env node
// Rewrites the README's configuration table from the code (`perry-hub config --markdown`), so the
// table cannot drift from what the services read. Run after `npm run build`: `npm run docs`.
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const table = execFileSync(process.execPath, [join(root, 'libs/cli/dist/bin.js'), 'config', '--markdown'], {
  encoding: 'utf8',
}).trim();
const readme = join(root, 'README.md');
const text = readFileSync(readme, 'utf8');
const start = '<!-- config:start -->';
const end = '<!-- config:end -->';
const i = text.indexOf(start);
const j = text.indexOf(end);
if (i < 0 || j < i) throw new Error(`README.md needs ${start} and ${end} around the configuration table`);
writeFileSync(readme, `${text.slice(0, i + start.length)}\n${table}\n${text.slice(j)}`);
console.log(`README.md: ${table.split('\n').length - 2} variables`);
