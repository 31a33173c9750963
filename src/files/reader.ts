/**
 * Turns user-supplied paths into the text a model sees (SPEC §4.4): directories are expanded
 * (honouring .gitignore), each file becomes a line-numbered block, and blocks are embedded within
 * a token budget, listing every file that did not make it and why.
 */
import { ExaiError } from "../base/errors.js";
import {
  BINARY_SNIFF_BYTES,
  fileBlock,
  formatBytes,
  numberLines,
  placeholderResult,
  splitLines,
  type ReadFileResult,
} from "./blocks.js";
import { embedWithinBudget, type EmbedResult } from "./budget.js";
import { expandPaths, type ExpandContext, type ExpandResult } from "./expand.js";
import { openSandboxed, type OpenSandboxedOptions, type SandboxedFile } from "./open.js";
import type { FileSandbox } from "./sandbox.js";

export { formatBytes, type ReadFileResult } from "./blocks.js";
export type { EmbedResult } from "./budget.js";
export type { ExpandResult } from "./expand.js";
export { MAX_GITIGNORE_BYTES } from "./gitignore.js";

export interface FileReaderOptions {
  sandbox: FileSandbox;
  /** Files larger than this many bytes become a placeholder. Default 1,000,000 (1 MB). */
  maxFileBytes?: number;
  /** Most files one directory argument may expand to (recursively). Default 1000. */
  maxFilesPerDirectory?: number;
}

export interface FileReader {
  /**
   * Validates and expands paths: directories recursively, honouring the .gitignore files from the
   * directory up to its allowed root and below it, and skipping node_modules, .git, dist, build,
   * vendor, __pycache__, .venv and coverage. Returns realpaths of files, de-duplicated, in input
   * order with directory contents sorted (depth first, by name). Secrets found while walking are
   * left out (listed by `expandDetailed`); symlinks leading outside the roots are left out and
   * symlinked directories are not followed. A file named directly is opened and checked through
   * the sandbox (regular file, inside the roots, no private-key block in its content).
   * @throws ExaiError from the sandbox for a named path (`<field>[i]`), FILE_ACCESS_DENIED for a
   *   named secret (by name or content); INVALID_ARGUMENT when a directory expands to more than
   *   `maxFilesPerDirectory` files; FILE_ACCESS_DENIED when a directory cannot be listed; the
   *   signal's reason when aborted.
   */
  expand(paths: readonly string[], field: string, signal?: AbortSignal): Promise<string[]>;
  /** Like `expand`, and also lists what the walk left out (secrets, unusable `.gitignore` files). */
  expandDetailed(paths: readonly string[], field: string, signal?: AbortSignal): Promise<ExpandResult>;
  /**
   * Opens and reads one file through the sandbox for `options.purpose` with at most
   * `options.maxBytes` bytes (see `openSandboxed`): a larger file comes back `tooLarge`, unread.
   * @throws the errors of `openSandboxed`.
   */
  open(path: string, options: Omit<OpenSandboxedOptions, "roots" | "optional">): Promise<SandboxedFile>;
  /**
   * Reads one file into a block: `--- BEGIN FILE: <path> ---\n`, the content with right-aligned
   * line numbers (`   1│ line`, width ≥ 4), then `\n--- END FILE: <path> ---\n`. A file over
   * `maxFileBytes` or a binary file (NUL byte in its first 8 KB) becomes a one-line placeholder.
   * @throws ExaiError from the sandbox (field "path"); INVALID_ARGUMENT for a directory, a FIFO or
   *   device, or an unreadable file; FILE_ACCESS_DENIED when permission is denied or the content
   *   holds a private key; the signal's reason when aborted.
   */
  read(path: string, signal?: AbortSignal): Promise<ReadFileResult>;
  /**
   * Embeds files in the given order (put the highest-priority, newest files first) within
   * `tokenBudget` tokens as measured by `countTokens`. A file that does not fit is listed in
   * `skipped` ("exceeds the remaining token budget (needs N, M left)") and later, smaller files
   * may still fit. Placeholder files are listed in `skipped` with their placeholder reason; their
   * one-line block is embedded when it fits. A file whose content turns out to hold a private key
   * is listed in `skipped` as a secret and not embedded. Duplicate paths are embedded once.
   * @throws the same errors as `read`; ExaiError INTERNAL when `tokenBudget` is negative or NaN.
   */
  embed(
    paths: readonly string[],
    options: { tokenBudget: number; countTokens: (text: string) => number; signal?: AbortSignal },
  ): Promise<EmbedResult>;
}

const DEFAULT_MAX_FILE_BYTES = 1_000_000;
const DEFAULT_MAX_FILES_PER_DIRECTORY = 1000;

/**
 * Creates a reader that validates every path through `options.sandbox`.
 * @throws ExaiError INTERNAL when `maxFileBytes` or `maxFilesPerDirectory` is not a positive integer.
 */
export function createFileReader(options: FileReaderOptions): FileReader {
  const { sandbox } = options;
  const maxFileBytes = positiveInteger(options.maxFileBytes ?? DEFAULT_MAX_FILE_BYTES, "maxFileBytes");
  const maxFilesPerDirectory = positiveInteger(
    options.maxFilesPerDirectory ?? DEFAULT_MAX_FILES_PER_DIRECTORY,
    "maxFilesPerDirectory",
  );

  const roots = sandbox.allowedRoots;
  const context: ExpandContext = { sandbox, roots, maxFileBytes, maxFilesPerDirectory };

  async function expandDetailed(
    paths: readonly string[],
    field: string,
    signal?: AbortSignal,
  ): Promise<ExpandResult> {
    return expandPaths(context, paths, field, signal);
  }

  async function expand(paths: readonly string[], field: string, signal?: AbortSignal): Promise<string[]> {
    return (await expandDetailed(paths, field, signal)).files;
  }

  async function openFile(
    filePath: string,
    options: Omit<OpenSandboxedOptions, "roots" | "optional">,
  ): Promise<SandboxedFile> {
    const file = await openSandboxed(filePath, { ...options, roots });
    // Only `optional` opens resolve to undefined.
    if (file === undefined) throw new ExaiError("INTERNAL", `open: no result for ${filePath}`);
    return file;
  }

  async function read(filePath: string, signal?: AbortSignal): Promise<ReadFileResult> {
    signal?.throwIfAborted();
    const file = await openFile(filePath, { purpose: "file", maxBytes: maxFileBytes, field: "path", signal });
    if (file.content === undefined) return placeholderResult(file.path, file.size, tooLargeReason(file.size));
    const { content } = file;
    if (content.subarray(0, BINARY_SNIFF_BYTES).includes(0)) {
      return placeholderResult(file.path, content.length, "binary file omitted");
    }

    const lines = splitLines(content.toString("utf8"));
    return {
      path: file.path,
      text: fileBlock(file.path, numberLines(lines)),
      lines: lines.length,
      bytes: content.length,
    };
  }

  function tooLargeReason(bytes: number): string {
    return `file omitted: ${formatBytes(bytes)} exceeds the ${formatBytes(maxFileBytes)} limit`;
  }

  async function embed(
    paths: readonly string[],
    embedOptions: { tokenBudget: number; countTokens: (text: string) => number; signal?: AbortSignal },
  ): Promise<EmbedResult> {
    return embedWithinBudget(paths, read, embedOptions);
  }

  return { expand, expandDetailed, open: openFile, read, embed };
}

function positiveInteger(value: number, name: string): number {
  if (!Number.isInteger(value) || value <= 0) {
    throw new ExaiError("INTERNAL", `createFileReader: ${name} must be a positive integer, got ${value}`);
  }
  return value;
}
