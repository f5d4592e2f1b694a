#!/usr/bin/env node
// Rewrites the README's configuration tables from the code (`perry-hub config --markdown`, and the
// worker's variables), so the tables cannot drift from what the services and the worker read. Run after `npm run build`: `npm run docs`.
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const table = execFileSync(process.execPath, [join(root, 'libs/cli/dist/bin.js'), 'config', '--markdown'], {
  encoding: 'utf8',
}).trim();
const { variablesTable } = await import(join(root, 'apps/worker/dist/config.js'));
const workerTable = variablesTable();
const readme = join(root, 'README.md');
let text = readFileSync(readme, 'utf8');
const replace = (name, content) => {
  const start = `<!-- ${name}:start -->`;
  const end = `<!-- ${name}:end -->`;
  const i = text.indexOf(start);
  const j = text.indexOf(end);
  if (i < 0 || j < i) throw new Error(`README.md needs ${start} and ${end} around the table`);
  text = `${text.slice(0, i + start.length)}\n${content}\n${text.slice(j)}`;
};
replace('config', table);
replace('worker-config', workerTable);
writeFileSync(readme, text);
console.log(
  `README.md: ${table.split('\n').length - 2} variables, ${workerTable.split('\n').length - 2} for the worker`,
);
