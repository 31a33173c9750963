/**
 * Token budget accounting for embedded files (SPEC §4.4): blocks are embedded in order while they
 * fit, and every file that did not make it is listed with the reason.
 */
import { ExaiError } from "../base/errors.js";
import type { ReadFileResult } from "./blocks.js";

export interface EmbedResult {
  /** The concatenated blocks. */
  text: string;
  /** Paths embedded in full. */
  included: string[];
  /** Paths not embedded in full, with the reason; never silently dropped. */
  skipped: Array<{ path: string; reason: string }>;
  /** Tokens of `text`, as the sum of `countTokens` over its blocks. */
  tokens: number;
}

/** What `embedWithinBudget` needs: the budget, the tokenizer, and an optional abort signal. */
export interface EmbedOptions {
  tokenBudget: number;
  countTokens: (text: string) => number;
  signal?: AbortSignal;
}

/** Characters per counting slice: ~10–15 ms of tokenizer work, so other calls' timers still run. */
const COUNT_SLICE_CHARS = 32_768;

/**
 * Embeds the blocks `read` returns for `paths`, in order, within `options.tokenBudget` tokens (the
 * behaviour of `FileReader.embed`): a block that does not fit is listed in `skipped` and later,
 * smaller ones may still fit; placeholders are listed with their reason; a file `read` refuses as
 * a secret by content is listed and not embedded; duplicate paths are embedded once.
 * @throws the errors of `read`; ExaiError INTERNAL when `tokenBudget` is negative or NaN.
 */
export async function embedWithinBudget(
  paths: readonly string[],
  read: (path: string, signal?: AbortSignal) => Promise<ReadFileResult>,
  options: EmbedOptions,
): Promise<EmbedResult> {
  const { tokenBudget, countTokens, signal } = options;
  if (Number.isNaN(tokenBudget) || tokenBudget < 0) {
    throw new ExaiError("INTERNAL", `embed: tokenBudget must be a number ≥ 0, got ${tokenBudget}`);
  }
  const blocks: string[] = [];
  const included: string[] = [];
  const skipped: Array<{ path: string; reason: string }> = [];
  const seen = new Set<string>();
  let used = 0;

  for (const filePath of paths) {
    signal?.throwIfAborted();
    let file: ReadFileResult;
    try {
      file = await read(filePath, signal);
    } catch (error) {
      // A file found by walking a directory whose content is a private key: a secret, listed.
      if (ExaiError.is(error) && error.details.secret === "content") {
        if (!seen.has(filePath)) skipped.push({ path: filePath, reason: error.message });
        seen.add(filePath);
        continue;
      }
      throw error;
    }
    if (seen.has(file.path)) continue;
    seen.add(file.path);

    const left = tokenBudget - used;
    const needed = await countWithin(file.text, countTokens, left, signal);
    const fits = needed <= left;
    if (fits) {
      blocks.push(file.text);
      used += needed;
    }
    if (file.placeholder !== undefined) {
      skipped.push({ path: file.path, reason: file.placeholder });
    } else if (fits) {
      included.push(file.path);
    } else {
      skipped.push({
        path: file.path,
        // A large file stops being counted once it cannot fit: its count is then a lower bound ("N+").
        reason: `exceeds the remaining token budget (needs ${needed}${file.text.length > COUNT_SLICE_CHARS ? "+" : ""}, ${left} left)`,
      });
    }
  }
  return { text: blocks.join(""), included, skipped, tokens: used };
}

/**
 * Counts the tokens of `text` in slices cut at line ends, yielding to the event loop between
 * slices (the tokenizer is synchronous JavaScript: a 1 MB file takes ~0.4 s). Stops as soon as the
 * count passes `limit` and returns that partial count, which is then a lower bound (> limit).
 */
async function countWithin(
  text: string,
  countTokens: (text: string) => number,
  limit: number,
  signal?: AbortSignal,
): Promise<number> {
  if (text.length <= COUNT_SLICE_CHARS) return countTokens(text);
  let total = 0;
  for (let start = 0; start < text.length;) {
    let end = Math.min(text.length, start + COUNT_SLICE_CHARS);
    const newline = end < text.length ? text.lastIndexOf("\n", end) : -1;
    if (newline > start) end = newline + 1;
    total += countTokens(text.slice(start, end));
    if (total > limit) return total;
    start = end;
    await new Promise<void>((resolve) => setImmediate(resolve));
    signal?.throwIfAborted();
  }
  return total;
}
