import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // expect.poll waits for a page or a job to get somewhere; on a loaded machine that can take far
    // longer than vitest's default second. The limit is only there to end a test that is stuck.
    expect: { poll: { timeout: 50_000 } },
    // ORT sessions use both cores already; running test files one at a time keeps timings sane.
    fileParallelism: false,
  },
});
