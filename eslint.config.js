// ESLint (flat config) with typescript-eslint's type-aware rules: `npm run lint` (CONTRIBUTING.md).
// The rules read types through tsconfig.json (projectService), so a file tsc does not check is an error here.
import js from '@eslint/js';
import { defineConfig } from 'eslint/config';
import tseslint from 'typescript-eslint';

export default defineConfig(
  { ignores: ['node_modules/', '.cache/', '.data/', 'build/', 'tests/artifacts/'] },
  {
    linterOptions: { reportUnusedDisableDirectives: 'error', reportUnusedInlineConfigs: 'error' },
  },
  js.configs.recommended,
  tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
  },
  {
    rules: {
      // The `_` prefix marks what a signature or a destructuring must name but the body does not use.
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrorsIgnorePattern: '^_', destructuredArrayIgnorePattern: '^_', ignoreRestSiblings: true },
      ],
      // `async` without `await` is how a method keeps a Promise-returning contract (Processor, Sink,
      // Notifier...) with a throw becoming a rejection; removing it would change that.
      '@typescript-eslint/require-await': 'off',
      // `let [a, b] = ...` where only `a` is reassigned stays one statement.
      'prefer-const': ['error', { destructuring: 'all' }],
      // Off: each of its 10 findings was String() of a JSON or row value narrowed from unknown to {}
      // (after `?? ''` or a null check), which the rule cannot tell from an object.
      '@typescript-eslint/no-base-to-string': 'off',
    },
  },
  {
    // Tests read HTTP and ClickHouse answers as `any` or `unknown` (inject().json(), JSON.parse, rows)
    // and assert on them or build expectation keys from their fields.
    files: ['tests/**/*.ts'],
    rules: {
      // Golden expectations are deep JSON trees read field by field.
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      '@typescript-eslint/restrict-template-expressions': 'off',
    },
  },
  {
    // node-rdkafka's callbacks pass a LibrdKafkaError, which its types do not declare an Error.
    files: ['tests/**/*.ts', 'bench/**/*.ts'],
    rules: { '@typescript-eslint/prefer-promise-reject-errors': 'off' },
  },
  { files: ['**/*.js'], extends: [tseslint.configs.disableTypeChecked] },
);
