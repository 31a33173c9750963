/**
 * consensus through the executor against the fake provider: parallel fan-out with per-model
 * deadlines (a hung model becomes an error entry while the others' verdicts are kept), blinding,
 * sequential steps, and input validation.
 */
import { afterEach, describe, expect, it } from "vitest";
import type { RecordedRequest } from "../src/testing/fake-provider.js";
import { STANCE_PROMPTS } from "../src/tools/consensus-consult.js";
import { clock, startTestRuntime, type TestRuntime } from "./support/harness.js";

let harness: TestRuntime | undefined;
afterEach(async () => {
  await harness?.close();
  harness = undefined;
});

async function call(args: Record<string, unknown>) {
  if (!harness) throw new Error("no runtime");
  return harness.runtime.executor.call({ tool: "consensus", arguments: args });
}

function allText(request: RecordedRequest | undefined): string {
  const body = request?.body as { messages?: Array<{ content: unknown }> } | undefined;
  return (body?.messages ?? []).map((message) => String(message.content)).join("\n");
}

const requestFor = (model: string) =>
  harness?.fake.chatRequests().find((request) => (request.body as { model?: string }).model === model);

type Verdict = {
  model: string;
  stance: string;
  status: string;
  code?: string;
  message?: string;
  verdict?: string;
};

const HEALTHY_LATENCY_MS = 300;
const ATTEMPT_TIMEOUT_MS = 600;

describe("consensus, parallel", () => {
  it("consults all models at once: a hung model times out as an error entry, the others' verdicts are kept, wall time ≈ one model", async () => {
    harness = await startTestRuntime({
      PROVIDER_MAX_RETRIES: "0",
      GLM_TIMEOUT_SECS: String(ATTEMPT_TIMEOUT_MS / 1000),
    });
    harness.fake.enqueue(
      // The string match is exact, so this rule does not catch glm-4.5-flash.
      { match: { model: "glm-4.5" }, fault: { kind: "hang_before_headers" }, times: Infinity },
      {
        match: { model: "glm-4.5-flash" },
        delayMs: HEALTHY_LATENCY_MS,
        reply: { content: "VERDICT-FLASH: adopt it" },
      },
      {
        match: { model: "kimi-k2.6" },
        delayMs: HEALTHY_LATENCY_MS,
        reply: { content: "VERDICT-KIMI: too risky" },
      },
    );
    const started = clock();
    const outcome = await call({
      prompt: "Should we move the pricing service to an event-sourced design?",
      models: [
        { model: "glm-4.5-flash", stance: "for" },
        { model: "kimi-k2.6", stance: "against" },
        { model: "glm-4.5", stance: "neutral" },
      ],
    });
    const wall = clock() - started;
    expect(outcome.ok).toBe(true);
    const result = outcome.result ?? {};
    expect(result.status).toBe("consensus_partial");
    expect(result).toMatchObject({ mode: "parallel", consulted: 3, succeeded: 2, failed: 1 });
    const verdicts = result.verdicts as Verdict[];
    expect(verdicts.map((verdict) => [verdict.model, verdict.stance, verdict.status])).toEqual([
      ["glm-4.5-flash", "for", "success"],
      ["kimi-k2.6", "against", "success"],
      ["glm-4.5", "neutral", "error"],
    ]);
    expect(verdicts[0]?.verdict).toBe("VERDICT-FLASH: adopt it");
    expect(verdicts[1]?.verdict).toBe("VERDICT-KIMI: too risky");
    expect(verdicts[2]?.code).toBe("TIMEOUT");
    expect(result.continuation_id).toMatch(/^[0-9a-f-]{36}$/);
    expect(String(result.next_steps)).toMatch(/Synthesise/);
    // In parallel: about the slowest single model (the hung one's attempt timeout), well under the
    // sequential sum (2 × 300 ms + 600 ms); the message names the attempt timeout.
    expect(wall).toBeLessThan(1.5 * HEALTHY_LATENCY_MS + ATTEMPT_TIMEOUT_MS);
    expect(verdicts[2]?.message ?? "").toMatch(/first chunk/);
    // The three requests reached the provider together.
    const arrivals = harness.fake.chatRequests().map((request) => request.receivedAt);
    expect(Math.max(...arrivals) - Math.min(...arrivals)).toBeLessThan(HEALTHY_LATENCY_MS);
  });

  it("per-model deadlines end before the call's: models slower than the budget become TIMEOUT entries and the result still arrives", async () => {
    harness = await startTestRuntime({ PROVIDER_MAX_RETRIES: "0" });
    harness.fake.enqueue({ fault: { kind: "hang_before_headers" }, times: Infinity });
    const budgetMs = 1000;
    const started = clock();
    const outcome = await harness.runtime.executor.call({
      tool: "consensus",
      arguments: { prompt: "Q?", models: [{ model: "glm-4.5-flash" }, { model: "kimi-k2.6" }] },
      callerBudgetMs: budgetMs,
    });
    const wall = clock() - started;
    expect(outcome.ok).toBe(true);
    expect(outcome.result?.status).toBe("consensus_failed");
    expect((outcome.result?.verdicts as Verdict[]).map((verdict) => verdict.code)).toEqual([
      "TIMEOUT",
      "TIMEOUT",
    ]);
    expect(wall).toBeLessThan(budgetMs);
  });

  it("blinds each model: its request carries its own stance only and no other model's answer", async () => {
    harness = await startTestRuntime();
    harness.fake.enqueue(
      { match: { model: "glm-4.5-flash" }, reply: { content: "ANSWER-ONE" } },
      { match: { model: "kimi-k2.6" }, reply: { content: "ANSWER-TWO" } },
      { match: { model: "glm-4.5" }, reply: { content: "ANSWER-THREE" } },
    );
    const outcome = await call({
      prompt: "Adopt tRPC?",
      models: [
        { model: "glm-4.5-flash", stance: "for" },
        { model: "kimi-k2.6", stance: "against" },
        { model: "glm-4.5", stance: "neutral", stance_prompt: "CUSTOM-STANCE: weigh only operating cost" },
      ],
    });
    expect(outcome.result?.status).toBe("consensus_complete");
    const forText = allText(requestFor("glm-4.5-flash"));
    const againstText = allText(requestFor("kimi-k2.6"));
    const neutralText = allText(requestFor("glm-4.5"));
    expect(forText).toContain(STANCE_PROMPTS.for);
    expect(forText).not.toContain(STANCE_PROMPTS.against);
    expect(forText).not.toContain("CUSTOM-STANCE");
    expect(againstText).toContain(STANCE_PROMPTS.against);
    expect(againstText).not.toContain(STANCE_PROMPTS.for);
    expect(neutralText).toContain("CUSTOM-STANCE: weigh only operating cost");
    expect(neutralText).not.toContain(STANCE_PROMPTS.neutral);
    for (const text of [forText, againstText, neutralText]) {
      expect(text).toContain("Adopt tRPC?");
      expect(text).not.toMatch(/ANSWER-(ONE|TWO|THREE)/);
    }
  });

  it("an unknown model fails its entry with MODEL_NOT_FOUND; when every entry fails the result is consensus_failed", async () => {
    harness = await startTestRuntime();
    const partial = await call({
      prompt: "Q?",
      models: [
        { model: "glm-4.5-flash", stance: "for" },
        { model: "no-such-model", stance: "against" },
      ],
    });
    expect(partial.result?.status).toBe("consensus_partial");
    expect((partial.result?.verdicts as Verdict[])[1]).toMatchObject({
      model: "no-such-model",
      status: "error",
      code: "MODEL_NOT_FOUND",
    });
    const failed = await call({
      prompt: "Q?",
      models: [{ model: "no-such-model-a" }, { model: "no-such-model-b" }],
    });
    expect(failed.ok).toBe(true);
    expect(failed.result?.status).toBe("consensus_failed");
    expect(failed.result?.verdicts).toHaveLength(2);
  });

  it("refuses duplicate model+stance (aliases included), naming the entry; an oversized prompt asks for a file", async () => {
    harness = await startTestRuntime();
    const duplicate = await call({
      prompt: "Q?",
      models: [
        { model: "glm-4.5-flash", stance: "for" },
        { model: "flash", stance: "for" },
      ],
    });
    expect(duplicate.error?.code).toBe("INVALID_ARGUMENT");
    expect(duplicate.error?.field).toBe("models[1]");
    const tooMany = await call({
      prompt: "Q?",
      models: Array.from({ length: 9 }, (_, index) => ({
        model: `glm-4.5-flash`,
        stance_prompt: `s${index}`,
      })),
    });
    expect(tooMany.error?.field).toBe("models");
    const oversized = await call({ prompt: "x".repeat(60_001), models: [{ model: "glm-4.5-flash" }] });
    expect(oversized.result?.status).toBe("resend_prompt");
    expect(harness.fake.chatRequests()).toHaveLength(0);
  });
});

describe("consensus, sequential", () => {
  it("consults one model per step, blinded to earlier verdicts, and returns all verdicts at the last step", async () => {
    harness = await startTestRuntime();
    harness.fake.enqueue(
      { match: { model: "glm-4.5-flash" }, reply: { content: "SEQ-VERDICT-ONE" } },
      { match: { model: "kimi-k2.6" }, reply: { content: "SEQ-VERDICT-TWO" } },
    );
    const models = [
      { model: "glm-4.5-flash", stance: "for" },
      { model: "kimi-k2.6", stance: "against" },
    ];
    const first = await call({
      mode: "sequential",
      step_number: 1,
      prompt: "Use SQLite in production?",
      models,
    });
    expect(first.result?.status).toBe("pause_for_consensus");
    expect(first.result?.verdict).toMatchObject({ model: "glm-4.5-flash", verdict: "SEQ-VERDICT-ONE" });
    expect(harness.fake.chatRequests()).toHaveLength(1);

    const second = await call({
      mode: "sequential",
      step_number: 2,
      models,
      continuation_id: first.result?.continuation_id,
    });
    expect(second.ok).toBe(true);
    expect(second.result?.status).toBe("consensus_complete");
    expect(harness.fake.chatRequests()).toHaveLength(2);
    const kimiText = allText(requestFor("kimi-k2.6"));
    expect(kimiText).toContain("Use SQLite in production?");
    expect(kimiText).not.toContain("SEQ-VERDICT-ONE");
    expect(kimiText).not.toContain(STANCE_PROMPTS.for);
    expect((second.result?.verdicts as Verdict[]).map((verdict) => verdict.verdict)).toEqual([
      "SEQ-VERDICT-ONE",
      "SEQ-VERDICT-TWO",
    ]);
  });

  it("a later step without the round's continuation_id is refused, naming continuation_id", async () => {
    harness = await startTestRuntime();
    const outcome = await call({ mode: "sequential", step_number: 2, models: [{ model: "glm-4.5-flash" }] });
    expect(outcome.error?.code).toBe("INVALID_ARGUMENT");
    expect(outcome.error?.field).toBe("continuation_id");
  });
});
