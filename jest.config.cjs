/**
 * Jest runs in ESM mode: Nest 12 is ESM-only and Jest's CommonJS loader cannot require() it on Node 20.
 *
 * Two projects:
 * - `unit`: the pure tests next to the code (`src/**\/*.spec.ts`). No database, no global setup, and
 *   ts-jest transpiles file by file (isolatedModules), so `npm run test:unit` takes seconds. Types are
 *   checked by `npm run typecheck`, not here.
 * - `integration`: everything under `test/` on a real PostgreSQL (the global setup creates the test
 *   database once per run), compiled with the whole program so the Swagger CLI plugin sees the DTOs.
 * A plain run (`npm test`) runs both.
 */
const common = {
  testEnvironment: 'node',
  rootDir: '.',
  moduleFileExtensions: ['ts', 'js', 'json'],
  extensionsToTreatAsEsm: ['.ts'],
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  // Day-boundary pass (docs/testing.md): moves `Date` when GERBANG_FAKE_NOW is set, else does nothing.
  setupFiles: ['<rootDir>/test/support/fake-now.cjs'],
};

module.exports = {
  testTimeout: 30000,
  projects: [
    {
      ...common,
      displayName: 'unit',
      roots: ['<rootDir>/src'],
      testRegex: '.*\\.spec\\.ts$',
      transform: {
        '^.+\\.ts$': ['ts-jest', { useESM: true, tsconfig: '<rootDir>/tsconfig.unit.json' }],
      },
    },
    {
      ...common,
      displayName: 'integration',
      roots: ['<rootDir>/test'],
      testRegex: '.*\\.(spec|test|e2e-spec)\\.ts$',
      transform: {
        '^.+\\.ts$': [
          'ts-jest',
          {
            useESM: true,
            tsconfig: '<rootDir>/tsconfig.test.json',
            astTransformers: { before: ['<rootDir>/test/support/swagger-plugin.cjs'] },
            diagnostics: { warnOnly: false },
          },
        ],
      },
      globalSetup: '<rootDir>/test/support/global-setup.cjs',
      globalTeardown: '<rootDir>/test/support/global-teardown.cjs',
    },
  ],
};
