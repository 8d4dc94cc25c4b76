import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // ORT sessions use both cores already; running test files one at a time keeps timings sane.
    fileParallelism: false,
  },
});
