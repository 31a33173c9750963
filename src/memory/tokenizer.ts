/**
 * Token counting for context budgets (SPEC §4.3): a real BPE tokenizer (gpt-tokenizer, pure JS,
 * `cl100k_base` ranks), not characters ÷ 4. gpt-tokenizer rather than js-tiktoken: the same
 * counts, but its rank table costs about a third of the memory (+43 MB resident instead of
 * +112 MB, measured on Node 20) and a third of the build time. cl100k rather than o200k: the
 * estimate is as good for GLM / Kimi text (neither uses either table) at half the table size.
 *
 * GLM and Kimi use their own tokenizers, so these counts are estimates, typically within ~10–20 %
 * of what the provider bills; that is why the budgets in `./conversation.ts` keep a margin (40 % of
 * the window is left for the response and 20 % of the content share for the current prompt).
 */
import { createRequire } from "node:module";

/** Counts the tokens of a text. */
export interface TokenCounter {
  /** Number of tokens in `text` (an estimate for non-OpenAI models; see the module comment). */
  count(text: string): number;
}

/** The part of gpt-tokenizer's cl100k_base module used here. */
interface Encoding {
  countTokens(text: string, options: { allowedSpecial: Set<string>; disallowedSpecial: Set<string> }): number;
}

/**
 * Texts longer than this are encoded slice by slice (cut at word ends) so the token array that
 * the encoder builds stays bounded whatever the input size.
 */
const SLICE_CHARS = 100_000;

/**
 * A byte-pair merge is quadratic (or worse) in the length of one pre-tokenised piece: a
 * 20,000-character run without a space ("====…", base64) takes over a second. Runs of non-space or
 * of space characters longer than this are therefore counted in chunks of this size (a chunk
 * boundary costs at most one extra token per chunk, i.e. the count errs high by < 1 %).
 */
const MAX_RUN_CHARS = 128;
const LONG_RUN = new RegExp(`\\S{${MAX_RUN_CHARS + 1},}|\\s{${MAX_RUN_CHARS + 1},}`, "gu");

/** Distinct chunks remembered per `count` call: repetitive runs ("=====…") then cost one encode. */
const RUN_MEMO_LIMIT = 256;

/** Special-token strings ("<|endoftext|>") are counted as plain text and never thrown on. */
const PLAIN_TEXT = Object.freeze({ allowedSpecial: new Set<string>(), disallowedSpecial: new Set<string>() });

/**
 * The one process-wide encoder. This is the single piece of module-level mutable state in the
 * memory code, on purpose: loading the rank table takes ~0.2 s and ~40 MB of memory, so it must
 * happen at most once per process, lazily on the first count, and be shared.
 */
let cachedEncoder: Encoding | undefined;

/**
 * Loads the encoder on first use, through gpt-tokenizer's CommonJS build so `count` stays
 * synchronous: a process that never counts a token (`exai stdio` answering `initialize`, an idle
 * daemon) never parses the rank table.
 */
function encoder(): Encoding {
  if (cachedEncoder) return cachedEncoder;
  const require = createRequire(import.meta.url);
  cachedEncoder = require("gpt-tokenizer/cjs/encoding/cl100k_base") as Encoding;
  return cachedEncoder;
}

/** Tokens of a text. */
function encodeCount(enc: Encoding, text: string): number {
  return text.length === 0 ? 0 : enc.countTokens(text, PLAIN_TEXT);
}

function isHighSurrogate(code: number): boolean {
  return code >= 0xd800 && code <= 0xdbff;
}

function isSpace(ch: string | undefined): boolean {
  return ch !== undefined && /\s/u.test(ch);
}

/** Counts text that has no run longer than MAX_RUN_CHARS, in slices of at most ~SLICE_CHARS. */
function countPlain(enc: Encoding, text: string): number {
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
function countRun(enc: Encoding, run: string, memo: Map<string, number>): number {
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
