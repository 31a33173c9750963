/**
 * Regressions found in review: admission slots and pre-cancelled calls, coalescing across sandboxes
 * and during an abort, provider caps inside one call, idempotency keys per request, error events
 * inside a stream, oversized-file counting, tool names in caps.
 */
import http from "node:http";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { ExaiError } from "../src/base/errors.js";
import { createFileReader } from "../src/files/reader.js";
import { createFileSandbox } from "../src/files/sandbox.js";
import { createLogger } from "../src/base/logging.js";
import { createCoalescer } from "../src/pipeline/coalesce.js";
import { createRuntime } from "../src/runtime/runtime.js";
import { fastEnv, makeConfig, startTestRuntime, tempDir, type TestRuntime } from "./support/harness.js";

let harness: TestRuntime | undefined;
const extra: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  await harness?.close();
  harness = undefined;
  for (const cleanup of extra.splice(0)) await cleanup();
});

const chat = (prompt: string) => ({ tool: "chat", arguments: { prompt, model: "glm-4.5-flash" } });

describe("admission", () => {
  it("a call cancelled before it is admitted takes no slot", async () => {
    harness = await startTestRuntime();
    const controller = new AbortController();
    controller.abort();
    const outcome = await harness.runtime.executor.call({ ...chat("too late"), signal: controller.signal });
    expect(outcome.error?.code).toBe("CANCELLED");
    const snapshot = harness.runtime.admission.snapshot();
    expect(snapshot.global.inflight).toBe(0);
    expect(snapshot.provider.glm?.inflight).toBe(0);
    expect(harness.fake.chatRequests()).toHaveLength(0);
  });

  it("consensus takes a provider slot per model: one call cannot exceed a provider's cap", async () => {
    harness = await startTestRuntime({ EXAI_WS_GLM_MAX_INFLIGHT: "2" });
    harness.fake.setDefaultDelay(200);
    const outcome = await harness.runtime.executor.call({
      tool: "consensus",
      arguments: {
        prompt: "Ship it?",
        models: [
          { model: "glm-4.5-flash", stance: "for" },
          { model: "glm-4.5-air", stance: "against" },
          { model: "glm-4.6", stance: "neutral" },
        ],
      },
    });
    expect(outcome.ok).toBe(true);
    const entries = JSON.stringify(outcome.result);
    expect(entries).toContain("OVER_CAPACITY");
    expect(harness.fake.chatRequests()).toHaveLength(2);
    expect(harness.runtime.admission.snapshot().provider.glm?.inflight).toBe(0);
  });
});

describe("coalescing", () => {
  it("identical calls from clients with different roots do not share an execution", async () => {
    harness = await startTestRuntime({ EXAI_ALLOWED_ROOTS: "" });
    harness.fake.setDefaultDelay(200);
    const [a, b] = await Promise.all([
      harness.runtime.executor.call({ ...chat("same"), roots: [tmpdir()] }),
      harness.runtime.executor.call({ ...chat("same"), roots: [join(tmpdir(), "elsewhere")] }),
    ]);
    expect(a.ok && b.ok).toBe(true);
    expect(harness.fake.chatRequests()).toHaveLength(2);
  });

  it("a caller arriving while a shared run is being aborted starts a new run instead of inheriting the abort", async () => {
    const coalescer = createCoalescer();
    let runs = 0;
    const start = (signal: AbortSignal) =>
      new Promise<string>((resolve, reject) => {
        runs++;
        const timer = setTimeout(() => resolve(`run ${runs}`), 30);
        signal.addEventListener("abort", () => {
          // Unwinding takes a moment: the entry must not capture a newcomer meanwhile.
          setTimeout(() => {
            clearTimeout(timer);
            reject(signal.reason);
          }, 20);
        });
      });
    const first = new AbortController();
    const pending = coalescer.run("k", start, first.signal, 5000);
    first.abort(
      new ExaiError("TIMEOUT", "first caller's deadline", { details: { layer: "tool", budget_s: 5 } }),
    );
    await expect(pending).rejects.toMatchObject({ code: "TIMEOUT" });
    const second = await coalescer.run("k", start, new AbortController().signal, 5000);
    expect(second.shared).toBe(false);
    expect(second.value).toBe("run 2");
  });
});

describe("provider requests", () => {
  it("sends one Idempotency-Key per logical request, reused only by its retries", async () => {
    harness = await startTestRuntime();
    harness.fake.enqueue({ fault: { kind: "status", status: 503 } });
    await harness.runtime.executor.call({ tool: "chat", arguments: { prompt: "one", model: "kimi-k2.6" } });
    await harness.runtime.executor.call({ tool: "chat", arguments: { prompt: "one", model: "kimi-k2.6" } });
    const keys = harness.fake.chatRequests().map((request) => request.headers["idempotency-key"]);
    expect(keys).toHaveLength(3);
    expect(keys[0]).toBeTruthy();
    expect(keys[1]).toBe(keys[0]); // the retry of the first request
    expect(keys[2]).not.toBe(keys[0]); // the same prompt again is a new request
  });

  it("an error event inside a 200 stream is the provider's answer, not 'malformed data', and a content filter is not retried", async () => {
    let requests = 0;
    const server = http.createServer((_request, response) => {
      requests++;
      response.writeHead(200, { "content-type": "text/event-stream" });
      response.end(
        `data: ${JSON.stringify({ error: { code: "1301", message: "content flagged by the safety filter" } })}\n\n`,
      );
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    extra.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const port = (server.address() as { port: number }).port;
    harness = await startTestRuntime({ GLM_API_URL: `http://127.0.0.1:${port}` });
    const outcome = await harness.runtime.executor.call(chat("something"));
    expect(outcome.error?.code).toBe("PROVIDER_ERROR");
    expect(outcome.error?.message).toMatch(/content flagged by the safety filter/);
    expect(outcome.error?.message).not.toMatch(/malformed/);
    expect(requests).toBe(1);
  });
});

describe("files", () => {
  it("stops counting a large file once it cannot fit, and says so", async () => {
    const dir = mkdtempSync(join(tmpdir(), "exai-count-"));
    extra.push(() => rmSync(dir, { recursive: true, force: true }));
    const big = join(dir, "big.txt");
    writeFileSync(big, "const value = compute(input) + 1;\n".repeat(20_000));
    const reader = createFileReader({ sandbox: createFileSandbox({ allowedRoots: [dir] }) });
    let counted = 0;
    const result = await reader.embed([big], {
      tokenBudget: 100,
      countTokens: (text) => {
        counted += text.length;
        return Math.ceil(text.length / 4);
      },
    });
    expect(result.included).toEqual([]);
    expect(result.skipped[0]?.reason).toMatch(/needs \d+\+, 100 left/);
    expect(counted).toBeLessThan(100_000); // far less than the ~680 KB file
  });
});

describe("configuration of tool names", () => {
  it.each([
    ["EXAI_WS_TOOL_MAX_INFLIGHT", "analyse=3"],
    ["EXAI_WS_DISABLE_COALESCE_FOR_TOOLS", "chat,kodereview"],
  ])("%s with an unknown tool name is a startup error naming it", (variable, value) => {
    const data = tempDir();
    extra.push(data.cleanup);
    const config = makeConfig(fastEnv({ EXAI_DATA_DIR: data.path, [variable]: value }));
    expect(() => createRuntime(config, { mode: "stdio", logger: createLogger({ level: "silent" }) })).toThrow(
      new RegExp(`${variable} names unknown tool\\(s\\): (analyse|kodereview)`),
    );
  });

  it("an explicit shim ceiling above the recommended client timeout is reported", () => {
    expect(() => makeConfig({ EXAI_SHIM_RPC_TIMEOUT: "120" })).toThrow(
      /EXAI_SHIM_RPC_TIMEOUT \(120 s\) must be less than the recommended client timeout/,
    );
  });
});

describe("workflow tool-specific fields", () => {
  it("a field given at step 1 (codereview review_type) still reaches the expert at the final step", async () => {
    harness = await startTestRuntime();
    const step = (number: number, extra: Record<string, unknown> = {}) => ({
      step: `step ${number}`,
      step_number: number,
      total_steps: 2,
      next_step_required: number < 2,
      findings: `findings ${number}`,
      ...extra,
    });
    const first = await harness.runtime.executor.call({
      tool: "codereview",
      arguments: step(1, { review_type: "security", focus_on: "token handling" }),
    });
    const continuationId = first.result?.continuation_id as string;
    const final = await harness.runtime.executor.call({
      tool: "codereview",
      arguments: step(2, { continuation_id: continuationId }),
    });
    expect(final.result?.status).toBe("calling_expert_analysis");
    const sent = JSON.stringify(harness.fake.chatRequests()[0]?.body);
    expect(sent).toContain("Review type: security");
    expect(sent).toContain("Focus on: token handling");
  });
});
