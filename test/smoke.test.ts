/**
 * `exai smoke` against the fake provider (passes) and an unreachable one (fails, naming the tools).
 * The command runs in-process (test/support/cli.ts): its report, output and exit code are under test.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { startFakeProvider, type FakeProvider } from "../src/testing/fake-provider.js";
import { runCli } from "./support/cli.js";
import { clock, fastEnv, REPO_ROOT, tempDir } from "./support/harness.js";

let fake: FakeProvider;
let data: { path: string; cleanup: () => void };

beforeEach(async () => {
  fake = await startFakeProvider();
  data = tempDir("exai-smoke-test-");
});

afterEach(async () => {
  await fake.close();
  data.cleanup();
});

interface Report {
  ok: boolean;
  failed: string[];
  rows: Array<{
    tool: string;
    phase: string;
    status: string;
    seconds: number;
    budget_s: number;
    outcome: string;
    trace_id: string;
  }>;
}

async function smoke(
  env: Record<string, string | undefined>,
  args: string[],
): Promise<{ code: number; report: Report; stderr: string }> {
  const fullEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    ...fastEnv({ EXAI_DATA_DIR: data.path, ...env }),
  };
  const { code, stdout, stderr } = await runCli(["smoke", "--json", ...args], {
    env: fullEnv,
    cwd: REPO_ROOT,
  });
  return { code, report: JSON.parse(stdout) as Report, stderr };
}

describe("exai smoke", () => {
  it("passes against the fake provider: every tool of the full profile, then a parallel batch", async () => {
    const { code, report, stderr } = await smoke(
      {
        GLM_API_KEY: "k",
        GLM_API_URL: fake.url,
        KIMI_API_KEY: "k",
        KIMI_API_URL: fake.url,
        TOOL_PROFILE: "full",
        EXAI_WS_GLOBAL_MAX_INFLIGHT: "32",
      },
      ["--parallel", "6"],
    );
    const failures = report.rows.filter((row) => row.status === "fail");
    expect(failures).toEqual([]);
    expect(code).toBe(0);
    expect(report.ok).toBe(true);
    const sequential = report.rows.filter((row) => row.phase === "sequential");
    expect(sequential).toHaveLength(31);
    // precommit runs because the repository is a git checkout; nothing else is skipped.
    expect(sequential.filter((row) => row.status === "skip").map((row) => row.tool)).toEqual([]);
    expect(report.rows.filter((row) => row.phase === "parallel")).toHaveLength(6);
    for (const row of report.rows) {
      expect(row.trace_id).toBeTruthy();
      expect(row.seconds).toBeLessThanOrEqual(row.budget_s);
    }
    expect(stderr).toMatch(/\[1\/37\] chat: pass/);
    expect(fake.chatRequests().length).toBeGreaterThan(15);
  });

  it("fails fast against an unreachable provider, exit 1, naming the failing tools", async () => {
    const started = clock();
    const { code, report } = await smoke(
      { GLM_API_KEY: "k", GLM_API_URL: "http://127.0.0.1:9", PROVIDER_MAX_RETRIES: "1" },
      ["--tools", "chat,thinkdeep,listmodels,version", "--parallel", "0"],
    );
    expect(code).toBe(1);
    expect(report.ok).toBe(false);
    expect(report.failed.sort()).toEqual(["chat", "thinkdeep"]);
    const byTool = Object.fromEntries(report.rows.map((row) => [row.tool, row]));
    expect(byTool.chat?.outcome).toBe("PROVIDER_ERROR");
    expect(byTool.listmodels?.status).toBe("pass");
    for (const row of report.rows) expect(row.seconds).toBeLessThanOrEqual(row.budget_s);
    expect(clock() - started).toBeLessThan(15_000);
  });

  it("prints a table without --json", async () => {
    const fullEnv = {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      ...fastEnv({ EXAI_DATA_DIR: data.path, GLM_API_KEY: "k", GLM_API_URL: fake.url }),
    };
    const { code, stdout } = await runCli(["smoke", "--tools", "chat,version", "--parallel", "2"], {
      env: fullEnv,
      cwd: REPO_ROOT,
    });
    expect(code).toBe(0);
    expect(stdout).toMatch(/^tool\s+status\s+seconds\s+budget\s+outcome\s+trace_id/m);
    expect(stdout).toMatch(/^chat\s+pass\s+\d+\.\d\d\s+3\.0\s+success\s+[0-9a-f]{32}/m);
    expect(stdout).toMatch(/4 passed, 0 failed, 0 skipped/);
  });
});
