/**
 * Utility tools (no model): provider_capabilities, status, health, activity, toolcall_log_tail —
 * in-process runtimes against the fake provider over real HTTP.
 */
import { readFile, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { startTestRuntime, type TestRuntime } from "./support/harness.js";

const runtimes: TestRuntime[] = [];

async function start(env: Record<string, string | undefined> = {}): Promise<TestRuntime> {
  const test = await startTestRuntime(env);
  runtimes.push(test);
  return test;
}

afterEach(async () => {
  await Promise.all(runtimes.splice(0).map((test) => test.close()));
});

async function call(test: TestRuntime, tool: string, args: Record<string, unknown> = {}) {
  return test.runtime.executor.call({ tool, arguments: args });
}

async function success(test: TestRuntime, tool: string, args: Record<string, unknown> = {}) {
  const outcome = await call(test, tool, args);
  if (!outcome.ok) throw new Error(`${tool} failed: ${JSON.stringify(outcome.error)}`);
  return outcome.result as Record<string, unknown>;
}

/** A loopback port nothing listens on (bound, then released). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** The CALL SUMMARY lines are appended asynchronously: wait until the log holds `count` lines. */
async function waitForLogLines(path: string, count: number, timeoutMs = 2000): Promise<string[]> {
  const started = performance.now();
  for (;;) {
    const lines = await readFile(path, "utf8").then(
      (text) => text.split("\n").filter((line) => line.trim() !== ""),
      () => [] as string[],
    );
    if (lines.length >= count) return lines;
    if (performance.now() - started > timeoutMs)
      throw new Error(`the tool-call log has ${lines.length} lines, expected ${count}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe("provider_capabilities", () => {
  it("reports configuration and capabilities but never the key, URL or timeouts", async () => {
    const test = await start();
    const result = await success(test, "provider_capabilities");
    const text = JSON.stringify(result);
    expect(text).not.toContain("test-glm-key");
    expect(text).not.toContain("test-kimi-key");
    expect(text).not.toContain(test.fake.url);
    expect(text).not.toMatch(/timeout/i);
    const providers = result.providers as Array<Record<string, unknown>>;
    const byName = Object.fromEntries(providers.map((item) => [item.provider, item]));
    expect(byName.glm).toMatchObject({ configured: true, key_present: true });
    expect(byName.kimi).toMatchObject({ configured: true, key_present: true });
    expect(byName.custom).toMatchObject({ configured: false, key_present: false, web_search: false });
    const glmModels = byName.glm?.models as Array<Record<string, unknown>>;
    expect(glmModels.find((model) => model.id === "glm-4.5-flash")).toMatchObject({
      web_search: true,
      thinking: "toggle",
    });
    expect(String(byName.kimi?.web_search)).toContain("$web_search");
  });

  it("says key_present false for a provider that is not configured", async () => {
    const test = await start({ GLM_API_KEY: undefined });
    const result = await success(test, "provider_capabilities");
    const glm = (result.providers as Array<Record<string, unknown>>).find((item) => item.provider === "glm");
    expect(glm).toMatchObject({ configured: false, key_present: false });
  });
});

describe("status", () => {
  it("shows mode, uptime, admission caps, calls by outcome, providers and tool count", async () => {
    const test = await start();
    await success(test, "version");
    await call(test, "toolcall_log_tail", { lines: 0 }); // INVALID_ARGUMENT
    const result = await success(test, "status");
    expect(result).toMatchObject({
      mode: "stdio",
      configured_providers: ["glm", "kimi"],
      data_dir: test.dataDir,
      tool_profile: "standard",
    });
    expect(result.inflight).toBe(1); // the status call itself
    expect(result.uptime_s).toBeGreaterThanOrEqual(0);
    expect(result.tools).toBe(test.runtime.tools.length);
    const admission = result.admission as Record<string, Record<string, unknown>>;
    expect(admission.global).toMatchObject({ cap: test.runtime.config.admission.global });
    expect(admission.provider?.kimi).toMatchObject({ cap: test.runtime.config.admission.provider.kimi });
    expect(result.calls).toMatchObject({ total: 2, by_outcome: { success: 1, INVALID_ARGUMENT: 1 } });
  });
});

describe("health", () => {
  it("reports a reachable provider and an unreachable one within the short probe timeout", async () => {
    const port = await closedPort();
    const test = await start({ KIMI_API_URL: `http://127.0.0.1:${port}` });
    const started = performance.now();
    const result = await success(test, "health");
    const elapsed = performance.now() - started;
    expect(elapsed).toBeLessThan(3500);
    const providers = result.providers as Array<Record<string, unknown>>;
    const byName = Object.fromEntries(providers.map((item) => [item.provider, item]));
    expect(byName.glm).toMatchObject({ status: "reachable" });
    expect(byName.glm?.models_listed).toBeGreaterThan(0);
    expect(typeof byName.glm?.latency_ms).toBe("number");
    expect(byName.kimi).toMatchObject({ status: "unreachable", error_code: "PROVIDER_ERROR" });
    expect(byName.custom).toMatchObject({ status: "not_configured", set: "CUSTOM_API_URL" });
    expect(result.healthy).toBe(false);
    // One probe per provider, no retries: the fake saw exactly one GET /models.
    expect(test.fake.requests.filter((request) => request.path === "/models")).toHaveLength(1);
  });

  it("bounds a hanging provider by the probe deadline and says TIMEOUT", async () => {
    const test = await start({ SIMPLE_TOOL_TIMEOUT_SECS: "1.5", KIMI_API_KEY: undefined });
    test.fake.enqueue({ match: { path: "/models" }, fault: { kind: "hang_before_headers" } });
    const started = performance.now();
    const result = await success(test, "health");
    expect(performance.now() - started).toBeLessThan(1500);
    const glm = (result.providers as Array<Record<string, unknown>>).find((item) => item.provider === "glm");
    expect(glm).toMatchObject({ status: "unreachable", error_code: "TIMEOUT" });
  });

  it("counts an HTTP error answer as reachable with the status", async () => {
    const test = await start({ KIMI_API_KEY: undefined });
    test.fake.enqueue({ match: { path: "/models" }, fault: { kind: "status", status: 401 } });
    const result = await success(test, "health");
    const glm = (result.providers as Array<Record<string, unknown>>).find((item) => item.provider === "glm");
    expect(glm).toMatchObject({ status: "reachable", http_status: 401, auth: "rejected" });
  });
});

describe("toolcall_log_tail and activity", () => {
  it("returns an empty list, not an error, before any call finished", async () => {
    const test = await start();
    const result = await success(test, "toolcall_log_tail");
    expect(result).toMatchObject({ count: 0, entries: [] });
    expect(result.note).toContain("does not exist");
  });

  it("tails and summarises the CALL SUMMARY log after a few calls", async () => {
    const test = await start();
    await success(test, "version");
    await success(test, "chat", { prompt: "hello", model: "glm-4.5-flash" });
    await success(test, "version");
    const failed = await call(test, "chat", { prompt: "" });
    expect(failed.error?.code).toBe("INVALID_ARGUMENT");
    const path = test.runtime.services.toolCallLogPath;
    await waitForLogLines(path, 4);

    const tail = await success(test, "toolcall_log_tail", { lines: 2 });
    const entries = tail.entries as Array<Record<string, unknown>>;
    expect(entries.map((entry) => entry.tool)).toEqual(["version", "chat"]);
    expect(entries[1]).toMatchObject({ outcome: "error", error_code: "INVALID_ARGUMENT" });

    const chats = await success(test, "toolcall_log_tail", { tool: "chat_EXAI-WS" });
    expect((chats.entries as unknown[]).length).toBe(2);

    const activity = await success(test, "activity", { recent: 6, tool: "chat" });
    expect(activity.total_calls).toBe(2);
    const all = await success(test, "activity", { recent: 3 });
    expect(all.recent as unknown[]).toHaveLength(3);
    expect(activity.outcomes).toEqual({ success: 1, INVALID_ARGUMENT: 1 });
    expect((all.tools as Record<string, unknown>).version).toMatchObject({
      calls: 2,
      outcomes: { success: 2 },
    });
    const tools = activity.tools as Record<string, Record<string, unknown>>;
    expect(tools.chat).toMatchObject({ calls: 2, outcomes: { success: 1, INVALID_ARGUMENT: 1 } });
    expect(tools.chat?.p95_ms as number).toBeGreaterThanOrEqual(tools.chat?.p50_ms as number);
    const recent = activity.recent as Array<Record<string, unknown>>;
    expect(recent).toHaveLength(2);
    expect(recent.find((entry) => entry.tool === "chat" && entry.outcome === "success")).toMatchObject({
      model: "glm-4.5-flash",
    });
  });

  it("reads only the end of a large log and skips a torn first line", async () => {
    const test = await start();
    const path = test.runtime.services.toolCallLogPath;
    const line = (index: number) =>
      `${JSON.stringify({ at: new Date().toISOString(), tool: "version", outcome: "success", duration_ms: index, trace_id: `t${index}`, padding: "x".repeat(200) })}\n`;
    // ≈ 2.5 MB: more than the 1 MB window.
    await writeFile(path, Array.from({ length: 10_000 }, (_, index) => line(index)).join(""));
    const tail = await success(test, "toolcall_log_tail", { lines: 500 });
    const entries = tail.entries as Array<Record<string, unknown>>;
    expect(entries).toHaveLength(500);
    expect(entries.at(-1)?.trace_id).toBe("t9999");
    expect(tail.skipped_lines).toBeUndefined();
    const activity = await success(test, "activity", { recent: 0 });
    expect(activity.total_calls as number).toBeLessThan(10_000);
    expect(activity.note).toContain("1024 KB");
  });

  it("refuses more than 500 lines, naming the field", async () => {
    const test = await start();
    const outcome = await call(test, "toolcall_log_tail", { lines: 501 });
    expect(outcome.ok).toBe(false);
    expect(outcome.error?.code).toBe("INVALID_ARGUMENT");
    expect(outcome.error?.message).toContain("lines");
    expect(outcome.error?.field).toBe("lines");
  });
});
