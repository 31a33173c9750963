/**
 * Rebuilding a thread's history for a continued call (SPEC §4.3): turns are chosen newest-first
 * within a token budget derived from the model's context window, and the files the thread
 * referenced are embedded once each (newest reference wins).
 */
import { resolve } from "node:path";

import { invalidArgument } from "../base/errors.js";
import type { Thread, Turn } from "../store/store.js";
import type { TokenCounter } from "./tokenizer.js";

/** A model's context window, in tokens. */
export interface ContextBudget {
  contextWindow: number;
}

/** Share of the context window for input (the rest is left for the response). */
const CONTENT_SHARE = 0.6;
/** Shares of the input budget; the remaining 20 % is for the current prompt and instructions. */
const FILES_SHARE = 0.3;
const HISTORY_SHARE = 0.5;

/**
 * Splits a context window (tokens) into budgets, all in tokens, rounded down: 60 % content and
 * 40 % response; of the content, 30 % files and 50 % history (the remaining 20 % for the current
 * prompt). Token counts are estimates (see `./tokenizer.ts`), hence the generous response share.
 * Throws ExaiError INVALID_ARGUMENT (field contextWindow) unless `contextWindow` is a positive number.
 */
export function planBudget(contextWindow: number): {
  content: number;
  response: number;
  files: number;
  history: number;
} {
  if (!Number.isFinite(contextWindow) || contextWindow <= 0) {
    throw invalidArgument("contextWindow", `must be a positive number of tokens, got ${contextWindow}.`);
  }
  const window = Math.floor(contextWindow);
  const content = Math.floor(window * CONTENT_SHARE);
  return {
    content,
    response: window - content,
    files: Math.floor(content * FILES_SHARE),
    history: Math.floor(content * HISTORY_SHARE),
  };
}

/** The history part of a continued call's prompt. */
export interface ConversationContext {
  /**
   * "=== CONVERSATION HISTORY (thread <id>) ===\n--- Turn 3 (assistant via chat, model glm-4.5) ---\n…",
   * turns oldest-first in the text (selected newest-first); "" when nothing fits or there are no turns.
   */
  historyText: string;
  includedTurns: number;
  omittedTurns: number;
  /**
   * Paths to embed: every path referenced by any turn of the thread, each once, ordered by most
   * recent reference (newest first), without those in `excludeFiles`.
   */
  files: string[];
  /** Tokens of `historyText` (by the given counter); never more than the budget. */
  historyTokens: number;
}

function turnHeading(turn: Turn): string {
  const model = turn.model === undefined ? "" : `, model ${turn.model}`;
  return `--- Turn ${turn.index + 1} (${turn.role} via ${turn.toolName}${model}) ---`;
}

function formatTurn(turn: Turn): string {
  const lines = [turnHeading(turn), turn.content];
  if (turn.files.length > 0) lines.push(`Files referenced: ${turn.files.join(", ")}`);
  return lines.join("\n");
}

function omissionNote(omitted: number): string {
  const noun = omitted === 1 ? "turn" : "turns";
  return `[${omitted} earlier ${noun} omitted to fit the token budget]`;
}

/** The history text for the chosen blocks (oldest first) with `omitted` older turns left out. */
function render(threadId: string, blocks: string[], omitted: number): string {
  const parts = [`=== CONVERSATION HISTORY (thread ${threadId}) ===`];
  if (omitted > 0) parts.push(omissionNote(omitted));
  return [parts.join("\n"), ...blocks, "=== END CONVERSATION HISTORY ==="].join("\n\n");
}

/** Paths referenced by the turns, each once, newest reference first, minus `exclude`. */
function collectFiles(turns: readonly Turn[], exclude: readonly string[]): string[] {
  const seen = new Set(exclude.map((path) => resolve(path)));
  const files: string[] = [];
  for (let i = turns.length - 1; i >= 0; i--) {
    for (const path of turns[i]?.files ?? []) {
      const key = resolve(path);
      if (seen.has(key)) continue;
      seen.add(key);
      files.push(path);
    }
  }
  return files;
}

/**
 * Rebuilds a thread's history within `historyTokenBudget` tokens (see `planBudget().history`).
 * Turns are taken newest-first while they fit; the first turn that does not fit stops the walk
 * and it and all older turns are omitted (the text says how many). Files are those of all turns,
 * newest reference first, each once, skipping `excludeFiles` (already embedded in the current
 * request); fitting them is the file embedder's job, within `planBudget().files`. Never throws.
 */
export function buildConversationContext(
  thread: Thread,
  options: { historyTokenBudget: number; counter: TokenCounter; excludeFiles?: string[] },
): ConversationContext {
  const { counter } = options;
  const budget = Number.isFinite(options.historyTokenBudget)
    ? Math.max(0, Math.floor(options.historyTokenBudget))
    : 0;
  const turns = [...thread.turns].sort((a, b) => a.index - b.index);
  const files = collectFiles(turns, options.excludeFiles ?? []);
  const empty = { historyText: "", includedTurns: 0, omittedTurns: turns.length, files, historyTokens: 0 };
  if (turns.length === 0) return empty;

  // Header, footer and the (worst-case) omission note cost the same whatever is selected.
  const overhead = counter.count(render(thread.id, [], turns.length));
  const separator = counter.count("\n\n");
  const selected: string[] = []; // newest first
  let used = overhead;
  for (let i = turns.length - 1; i >= 0; i--) {
    const turn = turns[i];
    if (turn === undefined) break;
    const block = formatTurn(turn);
    const cost = counter.count(block) + separator;
    if (used + cost > budget) break;
    used += cost;
    selected.push(block);
  }

  // Pieces tokenise slightly differently once joined: verify, and drop the oldest chosen turn
  // until the whole text fits (rarely more than one pass).
  for (;;) {
    const omitted = turns.length - selected.length;
    const text = render(thread.id, [...selected].reverse(), omitted);
    const tokens = counter.count(text);
    if (tokens <= budget) {
      return {
        historyText: text,
        includedTurns: selected.length,
        omittedTurns: omitted,
        files,
        historyTokens: tokens,
      };
    }
    if (selected.length === 0) return empty;
    selected.pop();
  }
}
