import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: "forks",
    // 2-core machines: two workers keep timing-sensitive tests honest.
    maxWorkers: 2,
    // Test files share their worker's module cache: src/, the MCP SDK, zod and the tokenizer's rank
    // table load once per worker instead of once per file (≈ 1 s of CPU per file). No test file
    // mocks modules or leaves globals changed (fake timers are restored in afterEach), so sharing
    // is safe; a file that needs a fresh module graph would go in its own project with isolate: true.
    isolate: false,
  },
});
