// One linter for the whole workspace. The module-boundary rule is what keeps the architecture
// visible: services may import libs, never each other; only the perry-hub command (type:app)
// may import services; the worker (apps/worker) only the contracts; tests may also use the test
// kit, and the cross-service tests anything.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import nx from '@nx/eslint-plugin';
import prettier from 'eslint-config-prettier';

const boundaries = (allow) => [
  'error',
  {
    enforceBuildableLibDependency: false,
    allow,
    depConstraints: [
      { sourceTag: 'type:service', onlyDependOnLibsWithTags: ['type:lib'] },
      { sourceTag: 'type:lib', onlyDependOnLibsWithTags: ['type:lib'] },
      { sourceTag: 'type:app', onlyDependOnLibsWithTags: ['type:lib', 'type:service', 'type:worker'] },
      // The worker runs on build machines: it speaks the wire contract and nothing else of the hub.
      { sourceTag: 'type:worker', onlyDependOnLibsWithTags: ['layer:contracts'] },
      { sourceTag: 'scope:shared', onlyDependOnLibsWithTags: ['scope:shared'] },
      // The dashboard runs in a browser: the contracts' types, nothing of the hub's code.
      { sourceTag: 'type:ui', onlyDependOnLibsWithTags: ['layer:contracts'] },
      { sourceTag: 'type:test', onlyDependOnLibsWithTags: ['*'] },
    ],
  },
];

export default tseslint.config(
  { ignores: ['**/dist/**', '**/node_modules/**', '**/.nx/**', '**/.perry-hub/**', '**/*.mjs'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts', '**/*.tsx'],
    plugins: { '@nx': nx },
    rules: {
      '@nx/enforce-module-boundaries': boundaries([]),
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      'no-restricted-syntax': [
        'error',
        { selector: 'TSEnumDeclaration', message: 'Use an `as const` object and a string union.' },
      ],
    },
  },
  {
    files: ['**/test/**/*.ts'],
    rules: { '@nx/enforce-module-boundaries': boundaries(['@perry-hub/testkit']) },
  },
  prettier,
);
