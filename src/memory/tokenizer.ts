/**
 * Token counting for context budgets (SPEC §4.3): a real BPE tokenizer (js-tiktoken, pure JS,
 * `cl100k_base` ranks), not characters ÷ 4. cl100k rather than o200k: the estimate is as good for
 * GLM / Kimi text (neither uses either table) and its rank table costs half the memory (~80 MB
 * resident instead of ~140 MB) and half the build time (~0.25 s).
 *
 * GLM and Kimi use their own tokenizers, so these counts are estimates, typically within ~10–20 %
 * of what the provider bills; that is why the budgets in `./conversation.ts` keep a margin (40 % of
 * the window is left for the response and 20 % of the content share for the current prompt).
 */
import { createRequire } from "node:module";
import type { Tiktoken, TiktokenBPE } from "js-tiktoken/lite";

/** Counts the tokens of a text. */
export interface TokenCounter {
  /** Number of tokens in `text` (an estimate for non-OpenAI models; see the module comment). */
  count(text: string): number;
}

/**
 * Texts longer than this are encoded slice by slice (cut at word ends) so the token array that
 * js-tiktoken builds stays bounded whatever the input size.
 */
const SLICE_CHARS = 100_000;

/**
 * js-tiktoken's byte-pair merge is quadratic (or worse) in the length of one pre-tokenised piece:
 * a 10,000-character run without a space ("xxxx…", "=====…", base64) takes seconds. Runs of
 * non-space or of space characters longer than this are therefore counted in chunks of this size
 * (a chunk boundary costs at most one extra token per chunk, i.e. the count errs high by < 1 %).
 */
const MAX_RUN_CHARS = 128;
const LONG_RUN = new RegExp(`\\S{${MAX_RUN_CHARS + 1},}|\\s{${MAX_RUN_CHARS + 1},}`, "gu");

/** Distinct chunks remembered per `count` call: repetitive runs ("=====…") then cost one encode. */
const RUN_MEMO_LIMIT = 256;

/**
 * The one process-wide encoder. This is the single piece of module-level mutable state in the
 * memory code, on purpose: building the rank table takes ~0.25 s and ~80 MB of
 * memory, so it must happen at most once per process, lazily on the first count, and be shared.
 */
let cachedEncoder: Tiktoken | undefined;

/**
 * Builds the encoder on first use. js-tiktoken and its 1 MB rank table are loaded here, not at
 * import (through their CommonJS builds, so `count` stays synchronous): a process that never
 * counts a token (`exai stdio` answering `initialize`, an idle daemon) never parses them.
 */
function encoder(): Tiktoken {
  if (cachedEncoder) return cachedEncoder;
  const require = createRequire(import.meta.url);
  const { Tiktoken: Encoder } = require("js-tiktoken/lite") as typeof import("js-tiktoken/lite");
  // The CommonJS build exports the rank table itself (module.exports = { bpe_ranks, … }).
  cachedEncoder = new Encoder(require("js-tiktoken/ranks/cl100k_base") as TiktokenBPE);
  return cachedEncoder;
}

/** Tokens of a text, special-token strings ("<|endoftext|>") counted as plain text, never thrown on. */
function encodeCount(enc: Tiktoken, text: string): number {
  return text.length === 0 ? 0 : enc.encode(text, [], []).length;
}

function isHighSurrogate(code: number): boolean {
  return code >= 0xd800 && code <= 0xdbff;
}

function isSpace(ch: string | undefined): boolean {
  return ch !== undefined && /\s/u.test(ch);
}

/** Counts text that has no run longer than MAX_RUN_CHARS, in slices of at most ~SLICE_CHARS. */
function countPlain(enc: Tiktoken, text: string): number {
  let total = 0;
  let start = 0;
  while (text.length - start > SLICE_CHARS) {
    let cut = start + SLICE_CHARS;
    // Cut where a word ends (before a space that follows a non-space) so " word" stays one piece.
    const floor = cut - 4 * MAX_RUN_CHARS;
    let i = cut;
    while (i > floor && !(isSpace(text[i]) && !isSpace(text[i - 1]))) i--;
    if (i > floor) cut = i;
    else if (isHighSurrogate(text.charCodeAt(cut - 1))) cut--;
    total += encodeCount(enc, text.slice(start, cut));
    start = cut;
  }
  return total + encodeCount(enc, text.slice(start));
}

/** Counts one long run in chunks of MAX_RUN_CHARS, encoding each distinct chunk once. */
function countRun(enc: Tiktoken, run: string, memo: Map<string, number>): number {
  let total = 0;
  let start = 0;
  while (start < run.length) {
    let end = Math.min(run.length, start + MAX_RUN_CHARS);
    if (end < run.length && isHighSurrogate(run.charCodeAt(end - 1))) end++;
    const chunk = run.slice(start, end);
    let tokens = memo.get(chunk);
    if (tokens === undefined) {
      tokens = encodeCount(enc, chunk);
      if (memo.size >= RUN_MEMO_LIMIT) memo.clear();
      memo.set(chunk, tokens);
    }
    total += tokens;
    start = end;
  }
  return total;
}

function countTokens(text: string): number {
  if (text.length === 0) return 0;
  const enc = encoder();
  const memo = new Map<string, number>();
  let total = 0;
  let start = 0;
  // matchAll works on a copy of the regex, so the shared LONG_RUN's lastIndex is never touched.
  for (const match of text.matchAll(LONG_RUN)) {
    total += countPlain(enc, text.slice(start, match.index));
    total += countRun(enc, match[0], memo);
    start = match.index + match[0].length;
  }
  return total + countPlain(enc, text.slice(start));
}

const TOKEN_COUNTER: TokenCounter = Object.freeze({ count: countTokens });

/**
 * The process-wide token counter (cl100k_base). Cheap to call; the encoder behind it is built on
 * the first `count` (~0.5 s, once per process) and shared. `count` never throws for any string.
 */
export function getTokenCounter(): TokenCounter {
  return TOKEN_COUNTER;
}
