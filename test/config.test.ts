/** Configuration and the timeout hierarchy (SPEC §3; issue acceptance i). */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, expectTypeOf, it } from "vitest";
import { loadConfig } from "../src/config/load.js";
import { buildTimeoutConfig, summary, validateHierarchy } from "../src/config/timeouts.js";
import { renderConfigTable, renderEnvExample } from "../src/config/docs.js";
import { buildEnvironmentSchema } from "../src/config/schema.js";
import { VARIABLE_SPECS, type ParsedEnvironment } from "../src/config/variables.js";
import { ExaiError } from "../src/base/errors.js";
import { runCli } from "./support/cli.js";
import { REPO_ROOT, tempDir } from "./support/harness.js";

const load = (env: Record<string, string>) => loadConfig({ env, cwd: REPO_ROOT, envFile: false });

function problemsOf(env: Record<string, string>): { variables: string[]; message: string } {
  try {
    load(env);
  } catch (error) {
    expect(ExaiError.is(error)).toBe(true);
    const failure = error as ExaiError;
    expect(failure.code).toBe("CONFIG_INVALID");
    return { variables: failure.details.variables as string[], message: failure.message };
  }
  throw new Error("expected the configuration to be rejected");
}

describe("defaults", () => {
  it("validate, and derive daemon 67.5 / shim 90 / client 112.5 from the 45 s workflow timeout", () => {
    const config = load({});
    const table = summary(config.timeouts);
    expect(table.hierarchy_valid).toBe(true);
    expect(table.tool_timeouts).toEqual({ simple: 30, workflow: 45, expert_analysis: 40 });
    expect(table.infrastructure_timeouts).toMatchObject({ daemon: 67.5, shim: 90, client: 112.5 });
    expect(table.ratios).toEqual({ daemon_to_tool: 1.5, shim_to_tool: 2, client_to_tool: 2.5 });
    expect(config.retry.maxRetries).toBe(3);
    expect(config.admission.tool).toEqual({ analyze: 3, codereview: 3, testgen: 4 });
  });

  it.each(["45", "46", "47", "120"])(
    "WORKFLOW_TOOL_TIMEOUT_SECS=%s validates (the Python original rejected 45 by rounding)",
    (workflow) => {
      const config = load({ WORKFLOW_TOOL_TIMEOUT_SECS: workflow });
      expect(validateHierarchy(config.timeouts)).toEqual([]);
      expect(config.timeouts.daemonMs).toBe(Number(workflow) * 1500);
    },
  );

  it("accepts fractions and moves the whole hierarchy with one variable", () => {
    const config = load({
      WORKFLOW_TOOL_TIMEOUT_SECS: "10.5",
      EXPERT_ANALYSIS_TIMEOUT_SECS: "5.5",
      SIMPLE_TOOL_TIMEOUT_SECS: "10",
      EXPERT_HEARTBEAT_INTERVAL_SECS: "1",
      EXAI_WS_PROGRESS_INTERVAL_SECS: "1",
    });
    expect(config.timeouts.daemonMs).toBe(15_750);
    expect(config.timeouts.shimMs).toBe(21_000);
    expect(config.timeouts.clientMs).toBe(26_250);
  });

  it("derives exactly: 1.5 × 0.1 s is compared without rounding", () => {
    const timeouts = buildTimeoutConfig({
      simple: 0.1,
      workflow: 0.1,
      expert: 0.05,
      http: 0.05,
      connect: 1,
      streamIdle: 1,
      glm: 0.05,
      kimi: 0.05,
      custom: 0.05,
      kimiWebSearch: 0.05,
      expertHeartbeat: 0.01,
      progressInterval: 0.01,
    });
    // Expert ≤ workflow − 5 s fails for such a tiny budget, but the infrastructure ordering holds exactly.
    // Expert 0.05 s ≤ 0.1 − 20 % holds; the heartbeat (0.01 s) is below half of every budget.
    expect(validateHierarchy(timeouts)).toEqual([]);
  });
});

describe("invalid values name the variable, the value and the rule", () => {
  it("an explicit EXAI_WS_CALL_TIMEOUT below the tool timeout", () => {
    const { variables, message } = problemsOf({ EXAI_WS_CALL_TIMEOUT: "40" });
    expect(variables).toContain("EXAI_WS_CALL_TIMEOUT");
    expect(message).toMatch(
      /EXAI_WS_CALL_TIMEOUT \(40 s\) must be greater than WORKFLOW_TOOL_TIMEOUT_SECS \(45 s\)/,
    );
  });

  it("a provider timeout above EX_HTTP_TIMEOUT_SECONDS", () => {
    const { variables, message } = problemsOf({ GLM_TIMEOUT_SECS: "31" });
    expect(variables).toEqual(expect.arrayContaining(["GLM_TIMEOUT_SECS", "EX_HTTP_TIMEOUT_SECONDS"]));
    expect(message).toMatch(/GLM_TIMEOUT_SECS \(31 s\) must be ≤ EX_HTTP_TIMEOUT_SECONDS \(30 s\)/);
  });

  it("a non-numeric value", () => {
    const { variables, message } = problemsOf({ KIMI_TIMEOUT_SECS: "thirty" });
    expect(variables).toEqual(["KIMI_TIMEOUT_SECS"]);
    expect(message).toMatch(/KIMI_TIMEOUT_SECS="thirty" is not a number of seconds/);
  });

  it("an explicit shim ceiling not above the daemon's", () => {
    const { variables } = problemsOf({ EXAI_SHIM_RPC_TIMEOUT: "60" });
    expect(variables).toContain("EXAI_SHIM_RPC_TIMEOUT");
  });

  it("expert analysis that leaves the workflow step no room", () => {
    const { variables, message } = problemsOf({ EXPERT_ANALYSIS_TIMEOUT_SECS: "41" });
    expect(variables).toContain("EXPERT_ANALYSIS_TIMEOUT_SECS");
    expect(message).toMatch(/must be ≤ WORKFLOW_TOOL_TIMEOUT_SECS − 5 s \(40 s\)/);
  });

  it("derives the expert budget when unset: 40 s, at most workflow − min(5 s, 20 %)", () => {
    expect(load({}).timeouts.expertAnalysisMs).toBe(40_000);
    expect(load({ WORKFLOW_TOOL_TIMEOUT_SECS: "25" }).timeouts.expertAnalysisMs).toBe(20_000);
    const tiny = load({
      WORKFLOW_TOOL_TIMEOUT_SECS: "1",
      SIMPLE_TOOL_TIMEOUT_SECS: "1",
      EXPERT_HEARTBEAT_INTERVAL_SECS: "0.2",
      EXAI_WS_PROGRESS_INTERVAL_SECS: "0.2",
    });
    expect(tiny.timeouts.expertAnalysisMs).toBe(800);
    expect(validateHierarchy(tiny.timeouts)).toEqual([]);
  });

  it("a heartbeat too slow to be seen before a timeout", () => {
    const { variables } = problemsOf({ EXAI_WS_PROGRESS_INTERVAL_SECS: "20" });
    expect(variables).toContain("EXAI_WS_PROGRESS_INTERVAL_SECS");
  });

  it.each([
    ["TOOL_PROFILE", "huge", /one of lean, standard, full/],
    ["EXPERT_ANALYSIS_ENABLED", "maybe", /true or false/],
    ["GLM_API_URL", "ftp://x", /http\(s\) URL/],
    ["EXAI_WS_PORT", "70000", /out of range/],
    ["EXAI_WS_TOOL_MAX_INFLIGHT", "analyze=three", /tool=N/],
    ["PROVIDER_MAX_RETRIES", "1.5", /whole number/],
    ["WORKFLOW_TOOL_TIMEOUT_SECS", "-1", /out of range/],
  ])("%s=%s", (name, value, rule) => {
    const { variables, message } = problemsOf({ [name]: value });
    expect(variables).toContain(name);
    expect(message).toMatch(rule);
  });

  it("reads the user file, never the working directory's .env, and the real environment wins", () => {
    const dir = tempDir();
    try {
      const userFile = join(dir.path, "user.env");
      writeFileSync(userFile, "GLM_API_KEY=from-file\nSIMPLE_TOOL_TIMEOUT_SECS=20\n", { mode: 0o600 });
      writeFileSync(join(dir.path, ".env"), "KIMI_API_KEY=from-project\nEXAI_ALLOWED_ROOTS=/\n");
      const config = loadConfig({
        env: { SIMPLE_TOOL_TIMEOUT_SECS: "25", EXAI_ENV_FILE: userFile },
        cwd: dir.path,
      });
      expect(config.providers.glm?.apiKey).toBe("from-file");
      expect(config.providers.kimi).toBeUndefined();
      expect(config.allowedRoots).toBeUndefined();
      expect(config.timeouts.simpleToolMs).toBe(25_000);
      expect(config.source).toMatchObject({ file: userFile, searched: userFile });
      expect(config.source.ignoredProjectEnv).toBe(join(dir.path, ".env"));
    } finally {
      dir.cleanup();
    }
  });
});

describe("exai config (the command)", () => {
  // The command in-process (test/support/cli.ts): its output and exit code, not the process, are
  // under test; config-home.test.ts runs the real `node dist/cli.js config` with only HOME and PATH.
  const env = (extra: Record<string, string>) => ({
    PATH: process.env.PATH ?? "",
    HOME: process.env.HOME ?? "",
    EXAI_ENV_FILE: "off",
    ...extra,
  });
  const config = (args: string[], extra: Record<string, string> = {}) =>
    runCli(["config", ...args], { env: env(extra), cwd: REPO_ROOT });

  it("prints the timeout table and the client timeout to set", async () => {
    const { code, stdout } = await config([]);
    expect(code).toBe(0);
    expect(stdout).toMatch(/client \(set this\)\s+112\.5/);
    expect(stdout).toMatch(/hierarchy valid: true/);
  });

  it("--json gives the summary", async () => {
    const { stdout } = await config(["--json"], { WORKFLOW_TOOL_TIMEOUT_SECS: "46" });
    const parsed = JSON.parse(stdout) as {
      timeouts: { infrastructure_timeouts: { daemon: number }; hierarchy_valid: boolean };
    };
    expect(parsed.timeouts.infrastructure_timeouts.daemon).toBe(69);
    expect(parsed.timeouts.hierarchy_valid).toBe(true);
  });

  it.each([
    [{ EXAI_WS_CALL_TIMEOUT: "30" }, "EXAI_WS_CALL_TIMEOUT"],
    [{ GLM_TIMEOUT_SECS: "45" }, "GLM_TIMEOUT_SECS"],
    [{ SIMPLE_TOOL_TIMEOUT_SECS: "abc" }, "SIMPLE_TOOL_TIMEOUT_SECS"],
  ])("exits 2 naming the variable for %o", async (extra, name) => {
    const failure = await config([], extra);
    expect(failure.code).toBe(2);
    expect(failure.stdout).toBe("");
    expect(failure.stderr).toContain(name);
    expect(failure.stderr).not.toMatch(/\n\s+at /); // no stack trace
  });

  it("--client codex prints a tool timeout ≥ the client timeout, as a required server", async () => {
    const { stdout } = await config(["--client", "codex"]);
    const timeout = Number(/tool_timeout_sec = (\d+)/.exec(stdout)?.[1]);
    expect(timeout).toBeGreaterThanOrEqual(112.5);
    // `codex exec` starts the model without waiting for optional servers (seen with Codex 0.171).
    expect(stdout).toMatch(/^required = true$/m);
  });

  it("--client claude prints MCP_TOOL_TIMEOUT ≥ the client timeout (ms)", async () => {
    const { stdout } = await config(["--client", "claude"]);
    // In-process the CLI module is src/cli.ts; config-home.test.ts checks the built dist/cli.js path.
    expect(stdout).toMatch(/claude mcp add exai -- \/\S*node\S* \/\S*cli\.[jt]s stdio/);
    expect(Number(/MCP_TOOL_TIMEOUT=(\d+)/.exec(stdout)?.[1])).toBeGreaterThanOrEqual(112_500);
  });
});

describe("documentation stays in sync with the schema", () => {
  it("the README configuration table is the generated one", () => {
    const readme = readFileSync(join(REPO_ROOT, "README.md"), "utf8");
    expect(readme).toContain(renderConfigTable());
  });

  it(".env.example is the generated one", () => {
    expect(readFileSync(join(REPO_ROOT, ".env.example"), "utf8")).toBe(renderEnvExample());
  });
});

describe("the typed environment", () => {
  it("types every variable by its kind, undefined only without a default; a misspelt name does not compile", () => {
    expectTypeOf<ParsedEnvironment["GLM_TIMEOUT_SECS"]>().toEqualTypeOf<number>();
    expectTypeOf<ParsedEnvironment["EXPERT_ANALYSIS_TIMEOUT_SECS"]>().toEqualTypeOf<number | undefined>();
    expectTypeOf<ParsedEnvironment["EXAI_MAX_STREAM_CHARS"]>().toEqualTypeOf<number | undefined>();
    expectTypeOf<ParsedEnvironment["EXPERT_ANALYSIS_ENABLED"]>().toEqualTypeOf<boolean>();
    expectTypeOf<ParsedEnvironment["TOOL_PROFILE"]>().toEqualTypeOf<"lean" | "standard" | "full">();
    expectTypeOf<ParsedEnvironment["GLM_API_KEY"]>().toEqualTypeOf<string | undefined>();
    expectTypeOf<ParsedEnvironment["EXAI_WS_DISABLE_COALESCE_FOR_TOOLS"]>().toEqualTypeOf<string[]>();
    expectTypeOf<ParsedEnvironment["ENABLED_TOOLS"]>().toEqualTypeOf<string[] | undefined>();
    // @ts-expect-error -- no such variable: a typo is a compile error, not a silent undefined
    expectTypeOf<ParsedEnvironment["GLM_TIMEOUT_SEC"]>();
  });

  it("parses to values of exactly those types, every defaulted variable present", () => {
    const parsed = buildEnvironmentSchema().parse({
      GLM_TIMEOUT_SECS: "12.5",
      ENABLED_TOOLS: "chat, planner",
    });
    expect(parsed.GLM_TIMEOUT_SECS).toBe(12.5);
    expect(parsed.ENABLED_TOOLS).toEqual(["chat", "planner"]);
    expect(parsed.EXPERT_ANALYSIS_ENABLED).toBe(true);
    expect(parsed.TOOL_PROFILE).toBe("standard");
    expect(parsed.EXPERT_ANALYSIS_TIMEOUT_SECS).toBeUndefined();
    const kinds: Record<string, string> = { seconds: "number", integer: "number", boolean: "boolean" };
    for (const spec of VARIABLE_SPECS) {
      const value = (parsed as Record<string, unknown>)[spec.name];
      if (spec.default === undefined) continue;
      expect(value, spec.name).toBeDefined();
      if (spec.kind === "list") expect(Array.isArray(value), spec.name).toBe(true);
      else expect(typeof value, spec.name).toBe(kinds[spec.kind] ?? "string");
    }
  });
});
