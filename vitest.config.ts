import { defineConfig } from 'vitest/config';

// Test files run in parallel, each in its own child process (forks, isolated), against the one
// shared Kafka/Redis that tests/setup/global-setup.ts makes sure of. Isolation between files
// comes from tests/helpers/env.ts (unique topic, group, Redis prefixes and data directory).
export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts'],
    pool: 'forks',
    poolOptions: { forks: { isolate: true, minForks: 1, maxForks: 2 } },
    fileParallelism: true,
    globalSetup: ['tests/setup/global-setup.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    teardownTimeout: 60_000,
    reporters: ['default'],
  },
});
