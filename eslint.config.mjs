// @ts-check
/**
 * Lint: typescript-eslint's type-aware recommended rules, and one architecture rule (see docs/decisions.md):
 * a module under src/<module>/ uses another module only through its public files.
 */
import js from '@eslint/js';
import boundaries from 'eslint-plugin-boundaries';
import tseslint from 'typescript-eslint';

/**
 * A module's public files: what other modules may import. Everything else in its folder is internal.
 * `*.decorators.ts`: decorators are made to be put on other modules' classes (auth's `@Public()`, `@Roles()`, …).
 */
const PUBLIC_FILES = [
  'index.ts',
  '**/index.ts',
  '*.module.ts',
  '*.service.ts',
  '*.dto.ts',
  '*.entity.ts',
  '*.decorators.ts',
];

export default tseslint.config(
  { ignores: ['dist/**', 'coverage/**', 'node_modules/**', '.data/**', 'test-artifacts/**', 'bench/results/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    files: ['src/**/*.ts'],
    plugins: { boundaries },
    settings: {
      'boundaries/elements': [
        // Shared kernel: open to every module.
        { type: 'shared', pattern: ['src/common', 'src/config', 'src/database'] },
        { type: 'module', pattern: 'src/*', capture: ['module'] },
      ],
      'import/resolver': { node: { extensions: ['.ts', '.js'] } },
    },
    rules: {
      'boundaries/dependencies': [
        'error',
        {
          default: 'allow',
          policies: [
            {
              to: { element: { type: 'module' } },
              disallow: {
                to: { element: { fileInternalPath: `!{${PUBLIC_FILES.join(',')}}` } },
              },
              message:
                'Import another module only through its public files (index.ts, *.module.ts, *.service.ts, *.dto.ts, *.entity.ts, *.decorators.ts); see docs/decisions.md',
            },
          ],
        },
      ],
    },
  },
  {
    // Tests and the benchmark read HTTP and JSON bodies, which are `any` by design (supertest's `res.body`,
    // `JSON.parse`); asserting on them is the point. The no-unsafe-* family is for production code only.
    files: ['test/**/*.ts', 'src/**/*.spec.ts', 'bench/**/*.ts'],
    rules: {
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
    },
  },
  {
    // Plain JavaScript (jest config, test support in CommonJS): no type information.
    files: ['**/*.cjs', '**/*.mjs', '**/*.js'],
    extends: [tseslint.configs.disableTypeChecked],
    languageOptions: {
      globals: {
        require: 'readonly',
        module: 'writable',
        process: 'readonly',
        __dirname: 'readonly',
        console: 'readonly',
        globalThis: 'readonly',
        URL: 'readonly',
      },
    },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
);
