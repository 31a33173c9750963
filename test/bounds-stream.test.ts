/**
 * Streamed and non-streamed provider output is bounded (issue 8, Build 5): a provider that streams
 * without end is cut off at the cap (EXAI_MAX_STREAM_CHARS, else 8 × the model's max output
 * tokens) with PROVIDER_ERROR naming the cap, the model and the variable — not retried, and with
 * the process's memory bounded while the fake provider streams at full speed.
 */
import { afterEach, describe, expect, it } from "vitest";
import { startTestRuntime, type TestRuntime } from "./support/harness.js";

/**
 * Attempt timeouts as long as the tool budget allows: only the cap may end these streams, also on a
 * loaded machine where pushing megabytes over loopback takes longer than the usual 2 s attempt.
 */
const LONG_ATTEMPTS = { GLM_TIMEOUT_SECS: "9", EX_HTTP_TIMEOUT_SECONDS: "9" };

let harness: TestRuntime | undefined;
afterEach(async () => {
  await harness?.close();
  harness = undefined;
});

/** Samples RSS every 10 ms while `run` runs; returns its result and the peak growth, bytes. */
async function peakRssGrowth<T>(run: () => Promise<T>): Promise<{ value: T; growth: number }> {
  global.gc?.();
  const before = process.memoryUsage.rss();
  let peak = before;
  const sampler = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage.rss());
  }, 10);
  try {
    const value = await run();
    peak = Math.max(peak, process.memoryUsage.rss());
    return { value, growth: peak - before };
  } finally {
    clearInterval(sampler);
  }
}

describe("streamed content cap", () => {
  it("an endless content stream ends at the derived cap (8 × max output) with PROVIDER_ERROR, once, in bounded memory", async () => {
    // A budget long enough that, without a cap, the stream would run for seconds (hundreds of MB
    // over loopback) and end as TIMEOUT.
    harness = await startTestRuntime({
      SIMPLE_TOOL_TIMEOUT_SECS: "10",
      WORKFLOW_TOOL_TIMEOUT_SECS: "20",
      PROVIDER_MAX_RETRIES: "3",
      ...LONG_ATTEMPTS,
    });
    harness.fake.enqueue({ fault: { kind: "endless" }, times: Infinity });
    const runtime = harness.runtime;
    const started = performance.now();
    const { value: outcome, growth } = await peakRssGrowth(() =>
      runtime.executor.call({ tool: "chat", arguments: { prompt: "hello", model: "glm-4.5" } }),
    );
    const elapsed = performance.now() - started;
    expect(outcome.ok).toBe(false);
    expect(outcome.error?.code).toBe("PROVIDER_ERROR");
    // glm-4.5: max output 98,304 tokens → 786,432 characters.
    expect(outcome.error?.message).toContain("786,432 characters");
    expect(outcome.error?.message).toContain("glm-4.5");
    expect(outcome.error?.message).toContain("EXAI_MAX_STREAM_CHARS");
    expect(outcome.error?.message).toContain("8 × the model's max output of 98,304 tokens");
    expect(outcome.error?.cap_chars).toBe(786_432);
    // Not retried: the same request would stream without end again.
    expect(harness.fake.chatRequests()).toHaveLength(1);
    expect(elapsed).toBeLessThan(10_000);
    expect(growth).toBeLessThan(100 * 1024 * 1024);
    // The attempt was aborted on the wire (the fake saw the client go away).
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(harness.fake.chatRequests()[0]?.abortedAt).toBeDefined();
  });

  it("one stream line that never ends (no chunk to count) is cut off too, in bounded memory", async () => {
    harness = await startTestRuntime({
      SIMPLE_TOOL_TIMEOUT_SECS: "10",
      WORKFLOW_TOOL_TIMEOUT_SECS: "20",
      ...LONG_ATTEMPTS,
    });
    harness.fake.enqueue({ fault: { kind: "endless", oneLine: true, chunkChars: 65536 }, times: Infinity });
    const runtime = harness.runtime;
    const { value: outcome, growth } = await peakRssGrowth(() =>
      runtime.executor.call({ tool: "chat", arguments: { prompt: "hello", model: "glm-4.5" } }),
    );
    expect(outcome.error?.code).toBe("PROVIDER_ERROR");
    expect(outcome.error?.message).toMatch(/glm-4\.5: a stream line passed [\d,]+ bytes without ending/);
    expect(outcome.error?.message).toContain("EXAI_MAX_STREAM_CHARS");
    expect(harness.fake.chatRequests()).toHaveLength(1);
    expect(growth).toBeLessThan(100 * 1024 * 1024);
  });

  it("an error response whose body never ends is cut off at 1 MiB, not retried", async () => {
    harness = await startTestRuntime({
      SIMPLE_TOOL_TIMEOUT_SECS: "10",
      WORKFLOW_TOOL_TIMEOUT_SECS: "20",
      ...LONG_ATTEMPTS,
    });
    harness.fake.enqueue({ fault: { kind: "endless", status: 503 }, times: Infinity });
    const runtime = harness.runtime;
    const { value: outcome, growth } = await peakRssGrowth(() =>
      runtime.executor.call({ tool: "chat", arguments: { prompt: "hello", model: "glm-4.5" } }),
    );
    expect(outcome.error?.code).toBe("PROVIDER_ERROR");
    expect(outcome.error?.message).toMatch(
      /glm-4\.5: a response that is not an event stream passed [\d,]+ bytes without ending/,
    );
    expect(harness.fake.chatRequests()).toHaveLength(1);
    expect(growth).toBeLessThan(100 * 1024 * 1024);
  });

  it("hundreds of MB of reasoning streamed at full speed up to a large cap: memory stays bounded (nothing of it is kept)", async () => {
    harness = await startTestRuntime({
      EXAI_MAX_STREAM_CHARS: "200000000",
      SIMPLE_TOOL_TIMEOUT_SECS: "25",
      WORKFLOW_TOOL_TIMEOUT_SECS: "30",
    });
    harness.fake.enqueue({ fault: { kind: "endless", field: "reasoning", chunkChars: 65536 } });
    const runtime = harness.runtime;
    const { value: outcome, growth } = await peakRssGrowth(() =>
      runtime.executor.call({ tool: "chat", arguments: { prompt: "hello", model: "glm-4.5" } }),
    );
    expect(outcome.error?.code).toBe("PROVIDER_ERROR");
    expect(outcome.error?.message).toContain("the cap of 200,000,000 characters");
    expect(growth).toBeLessThan(100 * 1024 * 1024);
  }, 40_000);

  it("EXAI_MAX_STREAM_CHARS sets the cap; reasoning counts towards it", async () => {
    harness = await startTestRuntime({ EXAI_MAX_STREAM_CHARS: "50000", SIMPLE_TOOL_TIMEOUT_SECS: "10" });
    harness.fake.enqueue({ fault: { kind: "endless", field: "reasoning", chunkChars: 1000 } });
    const outcome = await harness.runtime.executor.call({
      tool: "chat",
      arguments: { prompt: "hello", model: "glm-4.5-flash" },
    });
    expect(outcome.error?.code).toBe("PROVIDER_ERROR");
    expect(outcome.error?.message).toMatch(
      /glm-4\.5-flash: the streamed response passed the cap of 50,000 characters \(answer \+ reasoning; EXAI_MAX_STREAM_CHARS\)/,
    );
    expect(harness.fake.chatRequests()).toHaveLength(1);
  });

  it("an answer within the cap is returned whole", async () => {
    harness = await startTestRuntime({ EXAI_MAX_STREAM_CHARS: "50000" });
    harness.fake.enqueue({ reply: { content: "y".repeat(40_000), chunkSize: 4000 } });
    const outcome = await harness.runtime.executor.call({
      tool: "chat",
      arguments: { prompt: "hello", model: "glm-4.5-flash" },
    });
    expect(outcome.ok).toBe(true);
    expect(String(outcome.result?.content)).toHaveLength(40_000);
  });

  it("a non-streamed body without end stops at the cap in bytes with PROVIDER_ERROR", async () => {
    harness = await startTestRuntime({ EXAI_MAX_STREAM_CHARS: "1000000", SIMPLE_TOOL_TIMEOUT_SECS: "10" });
    harness.fake.enqueue({ match: { path: "/web_search" }, fault: { kind: "endless" }, times: Infinity });
    const runtime = harness.runtime;
    const { value: outcome, growth } = await peakRssGrowth(() =>
      runtime.executor.call({ tool: "glm_web_search", arguments: { query: "anything" } }),
    );
    expect(outcome.error?.code).toBe("PROVIDER_ERROR");
    expect(outcome.error?.message).toContain(
      "POST /web_search: the response body passed the cap of 1,000,000 bytes",
    );
    expect(outcome.error?.message).toContain("EXAI_MAX_STREAM_CHARS");
    expect(harness.fake.requests.filter((request) => request.path === "/web_search")).toHaveLength(1);
    expect(growth).toBeLessThan(100 * 1024 * 1024);
  });
});
