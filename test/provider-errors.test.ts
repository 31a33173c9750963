/**
 * Parsing at the edges of the provider layer: stream chunks and provider error bodies are parsed
 * with zod schemas; each adapter classifies its own error codes (Z.ai business codes in glm.ts,
 * Moonshot's error types in kimi.ts). Unit tests of the parsers and classifiers, plus real HTTP
 * servers on port 0 for what only the whole attempt shows.
 */
import http from "node:http";
import { afterEach, describe, expect, it } from "vitest";
import { ExaiError } from "../src/base/errors.js";
import { httpError, parseProviderError, streamError } from "../src/providers/error-classification.js";
import { classifyGlmError, glmDialect } from "../src/providers/glm.js";
import { classifyKimiError, kimiDialect } from "../src/providers/kimi.js";
import { customDialect } from "../src/providers/custom.js";
import { applyChunk, emptyStreamState } from "../src/providers/stream.js";
import { startTestRuntime, type TestRuntime } from "./support/harness.js";

const settings = (name: "glm" | "kimi" | "custom") =>
  ({ name, baseUrl: "http://127.0.0.1:1", apiKey: "k" }) as Parameters<typeof httpError>[3]["settings"];
const scope = (dialect: typeof glmDialect, name: "glm" | "kimi" | "custom") => ({
  dialect,
  settings: settings(name),
  redact: (text: string) => text,
});

const emptyState = emptyStreamState;

describe("provider error bodies", () => {
  it("are parsed whatever their shape: nested, bare, numeric codes, text, garbage", () => {
    expect(parseProviderError({ error: { message: "slow down", code: 1302 } })).toEqual({
      message: "slow down",
      code: "1302",
    });
    expect(parseProviderError({ message: "bare", code: "x", type: "server_error" })).toEqual({
      message: "bare",
      code: "x",
      type: "server_error",
    });
    expect(parseProviderError("plain text")).toEqual({ message: "plain text" });
    expect(parseProviderError({ error: { message: { nested: true }, code: null } })).toEqual({});
    expect(parseProviderError(42)).toEqual({});
    expect(parseProviderError(null)).toEqual({});
  });

  it("Z.ai business codes are classified by the GLM adapter", () => {
    expect(classifyGlmError({ code: "1302" })).toBe("rate_limited");
    expect(classifyGlmError({ code: "1113" })).toBe("quota");
    expect(classifyGlmError({ code: "1301" })).toBe("final");
    expect(classifyGlmError({ type: "server_error" })).toBeUndefined();
    const limited = streamError(
      { code: 1305, message: "too many requests" },
      scope(glmDialect, "glm"),
      undefined,
    );
    expect(limited).toMatchObject({ code: "RATE_LIMITED", retryable: true });
    const filtered = streamError({ code: "1301", message: "flagged" }, scope(glmDialect, "glm"), undefined);
    expect(filtered).toMatchObject({ code: "PROVIDER_ERROR", retryable: false });
    // The same code means nothing to another provider: the shared rules decide (not retried).
    const custom = streamError({ code: 1305, message: "x" }, scope(customDialect, "custom"), undefined);
    expect(custom).toMatchObject({ code: "PROVIDER_ERROR", retryable: false });
    const quota = httpError(
      429,
      { error: { code: "1113", message: "arrears" } },
      undefined,
      scope(glmDialect, "glm"),
    );
    expect(quota).toMatchObject({ code: "RATE_LIMITED", retryable: false });
    expect(quota.message).toMatch(/quota exhausted/);
  });

  it("Moonshot error types are classified by the Kimi adapter", () => {
    expect(classifyKimiError({ type: "exceeded_current_quota_error" })).toBe("quota");
    expect(classifyKimiError({ type: "engine_overloaded_error" })).toBe("transient");
    const quota = httpError(
      429,
      { error: { type: "exceeded_current_quota_error", message: "no credit" } },
      undefined,
      scope(kimiDialect, "kimi"),
    );
    expect(quota).toMatchObject({ code: "RATE_LIMITED", retryable: false });
    const limited = httpError(
      429,
      { error: { type: "rate_limit_reached_error", message: "slow" } },
      { get: (name: string) => (name === "retry-after" ? "2" : null) },
      scope(kimiDialect, "kimi"),
    );
    expect(limited).toMatchObject({ code: "RATE_LIMITED", retryable: true, retryAfterS: 2 });
    const overloaded = streamError(
      { type: "engine_overloaded_error", message: "busy" },
      scope(kimiDialect, "kimi"),
      undefined,
    );
    expect(overloaded).toMatchObject({ code: "PROVIDER_ERROR", retryable: true });
  });
});

describe("stream chunks", () => {
  const options = { label: "GLM glm-4.5", provider: "glm" as const };

  it("accumulate content, reasoning, tool-call fragments, finish_reason and usage (null fields allowed)", () => {
    const state = emptyState();
    applyChunk(
      state,
      { id: "c1", choices: [{ delta: { reasoning_content: "hmm", content: null } }] },
      options,
    );
    applyChunk(
      state,
      {
        id: null,
        choices: [
          { delta: { tool_calls: [{ index: 0, id: "t1", function: { name: "look", arguments: '{"a"' } }] } },
        ],
      },
      options,
    );
    applyChunk(
      state,
      { choices: [{ delta: { tool_calls: [{ index: 0, function: { arguments: ":1}" } }] } }] },
      options,
    );
    applyChunk(
      state,
      {
        choices: [{ delta: { content: "done" }, finish_reason: "tool_calls" }],
        usage: { prompt_tokens: 3, completion_tokens: 4 },
      },
      options,
    );
    expect(state).toMatchObject({
      content: "done",
      reasoningTokens: 1,
      finishReason: "tool_calls",
      requestId: "c1",
      usage: { promptTokens: 3, completionTokens: 4, totalTokens: 7 },
    });
    expect(state.toolCalls[0]).toEqual({
      id: "t1",
      type: "function",
      function: { name: "look", arguments: '{"a":1}' },
    });
  });

  it("a chunk of the wrong shape is a retryable PROVIDER_ERROR naming the field, not a crash or a silent skip", () => {
    const state = emptyState();
    let caught: unknown;
    try {
      applyChunk(state, { choices: [{ delta: { content: 42 } }] }, options);
    } catch (error) {
      caught = error;
    }
    expect(ExaiError.is(caught)).toBe(true);
    expect(caught).toMatchObject({ code: "PROVIDER_ERROR", retryable: true });
    expect((caught as Error).message).toMatch(/choices\.0\.delta\.content/);
    expect(state.content).toBe("");
  });
});

describe("a provider sending chunks of the wrong shape", () => {
  let harness: TestRuntime | undefined;
  let server: http.Server | undefined;
  afterEach(async () => {
    await harness?.close();
    harness = undefined;
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    server = undefined;
  });

  it("is retried and ends as PROVIDER_ERROR naming the field", async () => {
    let requests = 0;
    server = http.createServer((_request, response) => {
      requests++;
      response.writeHead(200, { "content-type": "text/event-stream" });
      response.end(`data: ${JSON.stringify({ choices: "not a list" })}\n\ndata: [DONE]\n\n`);
    });
    await new Promise<void>((resolve) => server?.listen(0, "127.0.0.1", resolve));
    const port = (server.address() as { port: number }).port;
    harness = await startTestRuntime({ GLM_API_URL: `http://127.0.0.1:${port}`, PROVIDER_MAX_RETRIES: "1" });
    const outcome = await harness.runtime.executor.call({
      tool: "chat",
      arguments: { prompt: "hi", model: "glm-4.5-flash" },
    });
    expect(outcome.error?.code).toBe("PROVIDER_ERROR");
    expect(outcome.error?.message).toMatch(/wrong shape at choices/);
    expect(requests).toBe(2);
    expect(outcome.summary.attempts).toBe(2);
  });
});
