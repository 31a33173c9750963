/**
 * Turns user-supplied paths into the text a model sees (SPEC §4.4): directories are expanded
 * (honouring .gitignore), each file becomes a line-numbered block, and blocks are embedded within
 * a token budget, listing every file that did not make it and why.
 */
import type { Dirent, Stats } from "node:fs";
import { readdir, readFile, stat } from "node:fs/promises";
import path from "node:path";

import ignore, { type Ignore } from "ignore";

import { ExaiError, invalidArgument } from "../errors.js";
import { errorCode, isInsideRoot, isSecretPath, type FileSandbox } from "./sandbox.js";

export interface ReadFileResult {
  /** The realpath of the file, as shown in the block header. */
  path: string;
  /** The whole block: `--- BEGIN FILE: … ---`, the content (or placeholder), `--- END FILE: … ---`. */
  text: string;
  /** Number of content lines numbered in the block (0 for a placeholder). */
  lines: number;
  /** Size of the file in bytes. */
  bytes: number;
  /** Why the content was left out, e.g. "binary file omitted"; the block then holds `(<placeholder>)`. */
  placeholder?: string;
}

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
   * order with directory contents sorted (depth first, by name). Secrets, and symlinks leading
   * outside the roots, found while walking are skipped silently (the user did not name them);
   * symlinked directories are not followed.
   * @throws ExaiError from the sandbox for a named path (`<field>[i]`); INVALID_ARGUMENT when a
   *   directory expands to more than `maxFilesPerDirectory` files; FILE_ACCESS_DENIED when a
   *   directory cannot be listed; the signal's reason when aborted.
   */
  expand(paths: readonly string[], field: string, signal?: AbortSignal): Promise<string[]>;
  /**
   * Reads one file into a block: `--- BEGIN FILE: <path> ---\n`, the content with right-aligned
   * line numbers (`   1│ line`, width ≥ 4), then `\n--- END FILE: <path> ---\n`. A file over
   * `maxFileBytes` or a binary file (NUL byte in its first 8 KB) becomes a one-line placeholder.
   * @throws ExaiError from the sandbox (field "path"); INVALID_ARGUMENT for a directory or an
   *   unreadable file; FILE_ACCESS_DENIED when permission is denied; the signal's reason when aborted.
   */
  read(path: string, signal?: AbortSignal): Promise<ReadFileResult>;
  /**
   * Embeds files in the given order (put the highest-priority, newest files first) within
   * `tokenBudget` tokens as measured by `countTokens`. A file that does not fit is listed in
   * `skipped` ("exceeds the remaining token budget (needs N, M left)") and later, smaller files
   * may still fit. Placeholder files are listed in `skipped` with their placeholder reason; their
   * one-line block is embedded when it fits. Duplicate paths are embedded once.
   * @throws the same errors as `read`; ExaiError INTERNAL when `tokenBudget` is negative or NaN.
   */
  embed(
    paths: readonly string[],
    options: { tokenBudget: number; countTokens: (text: string) => number; signal?: AbortSignal },
  ): Promise<EmbedResult>;
}

const DEFAULT_MAX_FILE_BYTES = 1_000_000;
const DEFAULT_MAX_FILES_PER_DIRECTORY = 1000;
/** How much of a file is inspected for a NUL byte to call it binary (what git does, too). */
const BINARY_SNIFF_BYTES = 8192;
const SKIPPED_DIRECTORIES: ReadonlySet<string> = new Set([
  "node_modules",
  ".git",
  "dist",
  "build",
  "vendor",
  "__pycache__",
  ".venv",
  "coverage",
]);

/** The rules of one .gitignore file, which apply to paths below `base`. */
interface IgnoreLayer {
  base: string;
  rules: Ignore;
}

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

  async function expand(paths: readonly string[], field: string, signal?: AbortSignal): Promise<string[]> {
    if (!Array.isArray(paths)) {
      throw invalidArgument(field, "expected an array of absolute paths", { path: paths });
    }
    const result: string[] = [];
    const seen = new Set<string>();
    const add = (file: string): void => {
      if (seen.has(file)) return;
      seen.add(file);
      result.push(file);
    };

    for (const [index, input] of paths.entries()) {
      signal?.throwIfAborted();
      const itemField = `${field}[${index}]`;
      const real = await sandbox.resolve(input, itemField);
      const info = await statOrThrow(real, itemField, input);
      if (info.isFile()) {
        add(real);
      } else if (info.isDirectory()) {
        for (const file of await walkDirectory(real, itemField, input, signal)) add(file);
      } else {
        throw invalidArgument(
          itemField,
          `${JSON.stringify(input)} is neither a regular file nor a directory`,
          {
            path: input,
          },
        );
      }
    }
    return result;
  }

  /** All files below `directory` (a realpath inside the sandbox), in walk order. */
  async function walkDirectory(
    directory: string,
    field: string,
    input: string,
    signal: AbortSignal | undefined,
  ): Promise<string[]> {
    const files: string[] = [];
    const push = (file: string): void => {
      files.push(file);
      if (files.length > maxFilesPerDirectory) {
        throw invalidArgument(
          field,
          `${JSON.stringify(input)} contains more than ${maxFilesPerDirectory} files (after .gitignore); ` +
            `pass a narrower directory or individual files`,
          { path: input, limit: maxFilesPerDirectory },
        );
      }
    };

    const walk = async (current: string, inherited: readonly IgnoreLayer[]): Promise<void> => {
      signal?.throwIfAborted();
      const own = current === directory ? undefined : await loadGitignore(current, field, signal);
      const layers = own === undefined ? inherited : [...inherited, own];

      for (const entry of await listDirectory(current, field)) {
        signal?.throwIfAborted();
        const child = path.join(current, entry.name);
        if (entry.isDirectory()) {
          if (SKIPPED_DIRECTORIES.has(entry.name) || isSecretPath(child) || isIgnored(layers, child, true))
            continue;
          await walk(child, layers);
        } else if (entry.isFile()) {
          if (isSecretPath(child) || isIgnored(layers, child, false)) continue;
          push(child);
        } else if (entry.isSymbolicLink()) {
          // git treats a symlink as a file, whatever it points to.
          if (isSecretPath(child) || isIgnored(layers, child, false)) continue;
          const target = await resolveLinkedFile(child, field);
          if (target !== undefined) push(target);
        }
        // Sockets, FIFOs and devices are not source files: nothing to read.
      }
    };

    await walk(directory, await startingLayers(directory, field, signal));
    return files;
  }

  /**
   * The .gitignore layers that apply to the contents of `directory`: those from its allowed root
   * down to the directory itself. A directory the user named explicitly is walked even when an
   * ancestor's rules ignore it; then only its own rules (and those below) apply.
   */
  async function startingLayers(
    directory: string,
    field: string,
    signal: AbortSignal | undefined,
  ): Promise<IgnoreLayer[]> {
    // With nested roots the outermost one wins: its rules apply to everything below it.
    const root =
      sandbox.allowedRoots
        .filter((candidate) => isInsideRoot(directory, candidate))
        .sort((a, b) => a.length - b.length)[0] ?? directory;
    const chain: string[] = [];
    for (let current = directory; ; current = path.dirname(current)) {
      chain.unshift(current);
      if (current === root || current === path.dirname(current)) break;
    }

    const ancestors: IgnoreLayer[] = [];
    for (const ancestor of chain.slice(0, -1)) {
      const layer = await loadGitignore(ancestor, field, signal);
      if (layer !== undefined) ancestors.push(layer);
    }
    const own = await loadGitignore(directory, field, signal);
    const inherited = isIgnored(ancestors, directory, true) ? [] : ancestors;
    return own === undefined ? inherited : [...inherited, own];
  }

  /** The realpath of a symlink met while walking, or undefined when it must be left out. */
  async function resolveLinkedFile(link: string, field: string): Promise<string | undefined> {
    let target: string;
    try {
      target = await sandbox.resolve(link, field);
    } catch (error) {
      // A link the user did not name that leads outside the roots, to a secret or nowhere is left
      // out like a gitignored file would be; naming it explicitly still reports the error.
      if (ExaiError.is(error) && (error.code === "FILE_ACCESS_DENIED" || error.code === "INVALID_ARGUMENT")) {
        return undefined;
      }
      throw error;
    }
    const info = await statOrThrow(target, field, link);
    // Directory links are not followed: they can form cycles and repeat whole trees.
    return info.isFile() ? target : undefined;
  }

  async function read(filePath: string, signal?: AbortSignal): Promise<ReadFileResult> {
    signal?.throwIfAborted();
    const field = "path";
    const real = await sandbox.resolve(filePath, field);
    const info = await statOrThrow(real, field, filePath);
    if (info.isDirectory()) {
      throw invalidArgument(field, `${JSON.stringify(filePath)} is a directory; expand it into files first`, {
        path: filePath,
      });
    }
    // A FIFO or device would block a thread in open()/read(): only regular files are read.
    if (!info.isFile()) {
      throw invalidArgument(field, `${JSON.stringify(filePath)} is not a regular file`, { path: filePath });
    }
    if (info.size > maxFileBytes) return placeholderResult(real, info.size, tooLargeReason(info.size));

    const content = await readContent(real, field, filePath, signal);
    // The file may have grown between stat and read.
    if (content.length > maxFileBytes)
      return placeholderResult(real, content.length, tooLargeReason(content.length));
    if (content.subarray(0, BINARY_SNIFF_BYTES).includes(0)) {
      return placeholderResult(real, content.length, "binary file omitted");
    }

    const lines = splitLines(content.toString("utf8"));
    return {
      path: real,
      text: fileBlock(real, numberLines(lines)),
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
    const { tokenBudget, countTokens, signal } = embedOptions;
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
      const file = await read(filePath, signal);
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

  return { expand, read, embed };
}

/** Characters per counting slice: ~10–15 ms of tokenizer work, so other calls' timers still run. */
const COUNT_SLICE_CHARS = 32_768;

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

/**
 * Formats a byte count with decimal units, as people read file sizes: "100 B", "1.4 MB", "1 MB".
 */
export function formatBytes(bytes: number): string {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = bytes;
  let unit = 0;
  while (unit < units.length - 1 && Number(value.toFixed(1)) >= 1000) {
    value /= 1000;
    unit += 1;
  }
  const shown = unit === 0 ? String(Math.round(value)) : String(Number(value.toFixed(1)));
  return `${shown} ${units[unit]}`;
}

function fileBlock(filePath: string, body: string): string {
  return `--- BEGIN FILE: ${filePath} ---\n${body}\n--- END FILE: ${filePath} ---\n`;
}

function placeholderResult(filePath: string, bytes: number, reason: string): ReadFileResult {
  return { path: filePath, text: fileBlock(filePath, `(${reason})`), lines: 0, bytes, placeholder: reason };
}

/** Splits text into lines without a phantom last line after a final newline; drops CRs of CRLF. */
function splitLines(text: string): string[] {
  const withoutBom = text.startsWith("\uFEFF") ? text.slice(1) : text;
  if (withoutBom === "") return [];
  const lines = withoutBom.split("\n");
  if (lines[lines.length - 1] === "") lines.pop();
  return lines.map((line) => (line.endsWith("\r") ? line.slice(0, -1) : line));
}

function numberLines(lines: readonly string[]): string {
  if (lines.length === 0) return "(empty file)";
  const width = Math.max(4, String(lines.length).length);
  return lines.map((line, index) => `${String(index + 1).padStart(width)}│ ${line}`).join("\n");
}

/**
 * Whether `absolute` is ignored by the layers, applied outermost first so that a deeper
 * .gitignore can re-include (`!pattern`) what a shallower one ignored, as git does.
 */
function isIgnored(layers: readonly IgnoreLayer[], absolute: string, isDirectory: boolean): boolean {
  let ignored = false;
  for (const layer of layers) {
    if (absolute === layer.base || !isInsideRoot(absolute, layer.base)) continue;
    const relative = path.relative(layer.base, absolute).split(path.sep).join("/");
    const result = layer.rules.test(isDirectory ? `${relative}/` : relative);
    if (result.ignored) ignored = true;
    else if (result.unignored) ignored = false;
  }
  return ignored;
}

async function loadGitignore(
  directory: string,
  field: string,
  signal: AbortSignal | undefined,
): Promise<IgnoreLayer | undefined> {
  const file = path.join(directory, ".gitignore");
  let content: string;
  try {
    content = await readFile(file, { encoding: "utf8", signal });
  } catch (error) {
    if (signal?.aborted) signal.throwIfAborted();
    const code = errorCode(error);
    // No .gitignore here (or something else by that name): no rules at this level.
    if (code === "ENOENT" || code === "ENOTDIR" || code === "EISDIR") return undefined;
    throw readError(error, field, file, file);
  }
  // Case-sensitive, like git on Linux (core.ignorecase=false).
  return { base: directory, rules: ignore({ ignorecase: false }).add(content) };
}

async function listDirectory(directory: string, field: string): Promise<Dirent[]> {
  let entries: Dirent[];
  try {
    entries = await readdir(directory, { withFileTypes: true });
  } catch (error) {
    // Removed while we walked: it has no files left to offer.
    if (errorCode(error) === "ENOENT") return [];
    throw readError(error, field, directory, directory);
  }
  return entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

async function statOrThrow(real: string, field: string, input: string): Promise<Stats> {
  try {
    return await stat(real);
  } catch (error) {
    throw readError(error, field, input, real);
  }
}

async function readContent(
  real: string,
  field: string,
  input: string,
  signal?: AbortSignal,
): Promise<Buffer> {
  try {
    return await readFile(real, { signal });
  } catch (error) {
    // Surface the reason the caller aborted with (a deadline, a cancellation), not fs's AbortError.
    if (signal?.aborted) signal.throwIfAborted();
    throw readError(error, field, input, real);
  }
}

function readError(error: unknown, field: string, input: string, real: string): ExaiError {
  const code = errorCode(error);
  const quoted = JSON.stringify(input);
  const details = { field, path: input };
  if (code === "ENOENT" || code === "ENOTDIR") {
    return new ExaiError(
      "INVALID_ARGUMENT",
      `${field}: ${quoted} does not exist (it was removed while reading)`,
      {
        cause: error,
        details,
      },
    );
  }
  if (code === "EACCES" || code === "EPERM") {
    return new ExaiError(
      "FILE_ACCESS_DENIED",
      `${field}: ${quoted} cannot be read: permission denied for the exai server process (${real})`,
      { cause: error, details },
    );
  }
  if (code === "EISDIR") {
    return new ExaiError(
      "INVALID_ARGUMENT",
      `${field}: ${quoted} is a directory; expand it into files first`,
      {
        cause: error,
        details,
      },
    );
  }
  const reason = error instanceof Error ? error.message : String(error);
  return new ExaiError("INVALID_ARGUMENT", `${field}: ${quoted} could not be read: ${reason}`, {
    cause: error,
    details,
  });
}

function positiveInteger(value: number, name: string): number {
  if (!Number.isInteger(value) || value <= 0) {
    throw new ExaiError("INTERNAL", `createFileReader: ${name} must be a positive integer, got ${value}`);
  }
  return value;
}
