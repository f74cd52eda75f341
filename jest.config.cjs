/** Jest runs in ESM mode: Nest 12 is ESM-only and Jest's CommonJS loader cannot require() it on Node 20. */
module.exports = {
  testEnvironment: 'node',
  rootDir: '.',
  roots: ['<rootDir>/src', '<rootDir>/test'],
  testRegex: '.*\\.(spec|test|e2e-spec)\\.ts$',
  moduleFileExtensions: ['ts', 'js', 'json'],
  extensionsToTreatAsEsm: ['.ts'],
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
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
  setupFiles: ['<rootDir>/test/support/fake-now.cjs'],
  globalSetup: '<rootDir>/test/support/global-setup.cjs',
  globalTeardown: '<rootDir>/test/support/global-teardown.cjs',
  testTimeout: 30000,
};
