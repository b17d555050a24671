import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // 2-core CI machine: two test files at a time
    maxWorkers: 2,
    reporters: ['default'],
  },
});
