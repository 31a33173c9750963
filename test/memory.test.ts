import { describe, expect, it } from "vitest";

import { buildConversationContext, planBudget } from "../src/memory/conversation.js";
import { getTokenCounter } from "../src/memory/tokenizer.js";
import type { Thread, Turn } from "../src/store/store.js";

const counter = getTokenCounter();

function makeThread(turns: Array<Partial<Turn> & { content: string }>): Thread {
  return {
    id: "thread-1",
    toolName: "chat",
    createdAt: 0,
    updatedAt: 0,
    expiresAt: 1,
    turns: turns.map((turn, index) => ({
      index,
      role: index % 2 === 0 ? "user" : "assistant",
      toolName: "chat",
      files: [],
      createdAt: index,
      ...turn,
    })),
  };
}

describe("tokenizer", () => {
  it("counts real tokens", () => {
    expect(counter.count("hello world")).toBe(2);
    expect(counter.count("")).toBe(0);
    expect(getTokenCounter()).toBe(counter);
    // Special-token text is counted as plain text, not rejected.
    expect(counter.count("<|endoftext|>")).toBeGreaterThan(1);
  });

  it("counts long text in slices, close to the unsliced count", () => {
    const sentence = "The quick brown fox jumps over the lazy dog. ";
    const long = sentence.repeat(10_000); // 450,000 characters
    // 45,000 characters: encoded in one go, no slicing.
    const reference = counter.count(sentence.repeat(1000)) * 10;
    const total = counter.count(long);
    expect(total).toBeGreaterThan(reference * 0.99);
    expect(total).toBeLessThan(reference * 1.01);
  });

  it("counts pathological runs quickly", () => {
    const started = performance.now();
    const tokens = counter.count("x".repeat(200_000) + " " + "=".repeat(50_000) + "\n".repeat(50_000));
    expect(tokens).toBeGreaterThan(1000);
    expect(performance.now() - started).toBeLessThan(5000);
  });
});

describe("planBudget", () => {
  it("splits 128k into content/response and files/history", () => {
    expect(planBudget(128_000)).toEqual({
      content: 76_800,
      response: 51_200,
      files: 23_040,
      history: 38_400,
    });
  });

  it("rejects a non-positive window", () => {
    expect(() => planBudget(0)).toThrow(/contextWindow/);
  });
});

describe("buildConversationContext", () => {
  it("includes everything when it fits, oldest first in the text", () => {
    const thread = makeThread([
      { content: "first question" },
      { content: "first answer", model: "glm-4.5", toolName: "chat" },
    ]);
    const ctx = buildConversationContext(thread, { historyTokenBudget: 10_000, counter });
    expect(ctx.includedTurns).toBe(2);
    expect(ctx.omittedTurns).toBe(0);
    expect(ctx.historyText.startsWith("=== CONVERSATION HISTORY (thread thread-1) ===\n")).toBe(true);
    expect(ctx.historyText).toContain("--- Turn 2 (assistant via chat, model glm-4.5) ---\nfirst answer");
    expect(ctx.historyText.indexOf("first question")).toBeLessThan(ctx.historyText.indexOf("first answer"));
    expect(ctx.historyText).not.toContain("omitted");
    expect(ctx.historyTokens).toBe(counter.count(ctx.historyText));
  });

  it("selects newest-first within the budget and says how many were omitted", () => {
    const big = "word ".repeat(200); // ~200 tokens
    const thread = makeThread([
      { content: `T1 ${big}` },
      { content: `T2 ${big}` },
      { content: `T3 ${big}` },
      { content: `T4 ${big}` },
      { content: `T5 ${big}` },
    ]);
    const ctx = buildConversationContext(thread, { historyTokenBudget: 500, counter });
    expect(ctx.includedTurns).toBe(2);
    expect(ctx.omittedTurns).toBe(3);
    expect(ctx.historyText).toContain("3 earlier turns omitted to fit the token budget");
    expect(ctx.historyText).toContain("T5 ");
    expect(ctx.historyText).toContain("T4 ");
    expect(ctx.historyText).not.toContain("T3 ");
    expect(ctx.historyText.indexOf("T4 ")).toBeLessThan(ctx.historyText.indexOf("T5 "));
    expect(ctx.historyTokens).toBeLessThanOrEqual(500);
    expect(ctx.historyTokens).toBe(counter.count(ctx.historyText));
  });

  it("stops at the first turn that does not fit, even if an older one would", () => {
    const thread = makeThread([
      { content: "tiny" },
      { content: "huge ".repeat(2000) },
      { content: "newest" },
    ]);
    const ctx = buildConversationContext(thread, { historyTokenBudget: 300, counter });
    expect(ctx.includedTurns).toBe(1);
    expect(ctx.omittedTurns).toBe(2);
    expect(ctx.historyText).not.toContain("tiny");
  });

  it("returns no text for an empty thread or a budget too small for anything", () => {
    const empty = buildConversationContext(makeThread([]), { historyTokenBudget: 1000, counter });
    expect(empty).toMatchObject({ historyText: "", includedTurns: 0, omittedTurns: 0, historyTokens: 0 });
    const tiny = buildConversationContext(makeThread([{ content: "a" }]), { historyTokenBudget: 3, counter });
    expect(tiny).toMatchObject({ historyText: "", includedTurns: 0, omittedTurns: 1, historyTokens: 0 });
  });

  it("embeds each file once, newest reference first", () => {
    const thread = makeThread([
      { content: "1", files: ["/r/a.ts", "/r/b.ts"] },
      { content: "2", files: ["/r/c.ts"] },
      { content: "3", files: ["/r/a.ts", "/r/d.ts"] },
    ]);
    const ctx = buildConversationContext(thread, { historyTokenBudget: 10_000, counter });
    expect(ctx.files).toEqual(["/r/a.ts", "/r/d.ts", "/r/c.ts", "/r/b.ts"]);
  });

  it("leaves out files already embedded in the current request", () => {
    const thread = makeThread([
      { content: "1", files: ["/r/a.ts", "/r/b.ts"] },
      { content: "2", files: ["/r/c.ts"] },
    ]);
    const ctx = buildConversationContext(thread, {
      historyTokenBudget: 10_000,
      counter,
      excludeFiles: ["/r/c.ts", "/r/./a.ts"],
    });
    expect(ctx.files).toEqual(["/r/b.ts"]);
  });
});
