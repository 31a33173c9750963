import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: "forks",
    // 2-core machines: two workers keep timing-sensitive tests honest.
    maxWorkers: 2,
  },
});
