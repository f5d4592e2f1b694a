// Module hooks that let plain `node` run the benchmarks written in TypeScript (test/bench/**/*.ts):
// types are stripped with TypeScript's own transpileModule (no type check here; `npx tsc -p
// tsconfig.test.json` does that), and the NodeNext-style `./x.js` import of a `./x.ts` file is
// resolved to it. Workspace packages resolve to their built `dist`, as an operator runs them.
// Registered by ts-register.mjs: `node --import ./test/bench/ts-register.mjs file.ts`.
import { readFile } from 'node:fs/promises';
import ts from 'typescript';

const COMPILER_OPTIONS = {
  module: ts.ModuleKind.ESNext,
  target: ts.ScriptTarget.ES2022,
  verbatimModuleSyntax: true,
  inlineSourceMap: true,
};

export async function resolve(specifier, context, next) {
  try {
    return await next(specifier, context);
  } catch (err) {
    const fromTs = context.parentURL?.endsWith('.ts') ?? false;
    if (err?.code !== 'ERR_MODULE_NOT_FOUND' || !fromTs || !/^\.\.?\/.*\.js$/.test(specifier)) throw err;
    return next(`${specifier.slice(0, -'.js'.length)}.ts`, context);
  }
}

export async function load(url, context, next) {
  if (!url.startsWith('file:') || !url.endsWith('.ts')) return next(url, context);
  const source = await readFile(new URL(url), 'utf8');
  const { outputText } = ts.transpileModule(source, { fileName: url, compilerOptions: COMPILER_OPTIONS });
  return { format: 'module', source: outputText, shortCircuit: true };
}
