/**
 * Turns user-supplied paths into the text a model sees (SPEC §4.4): directories are expanded
 * (honouring .gitignore), each file becomes a line-numbered block, and blocks are embedded within
 * a token budget, listing every file that did not make it and why.
 */
import type { Dirent, Stats } from "node:fs";
import { readdir, stat } from "node:fs/promises";
import path from "node:path";

import ignore, { type Ignore } from "ignore";

import { ExaiError, invalidArgument } from "../base/errors.js";
import { openSandboxed, type OpenSandboxedOptions, type SandboxedFile } from "./open.js";
import { errorCode, isInsideRoot, secretRule, type FileSandbox } from "./sandbox.js";

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

export interface ExpandResult {
  /** Realpaths of the files, as `expand` returns them. */
  files: string[];
  /**
   * What the walk left out and why, never silently: secrets met inside a directory
   * ("secret file (*.pem)") and `.gitignore` files whose rules could not be applied.
   */
  skipped: Array<{ path: string; reason: string }>;
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
/** Largest `.gitignore` whose rules are applied, bytes; a larger one is listed as skipped. */
export const MAX_GITIGNORE_BYTES = 256 * 1024;
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

  const roots = sandbox.allowedRoots;

  async function expandDetailed(
    paths: readonly string[],
    field: string,
    signal?: AbortSignal,
  ): Promise<ExpandResult> {
    if (!Array.isArray(paths)) {
      throw invalidArgument(field, "expected an array of absolute paths", { path: paths });
    }
    const result: string[] = [];
    const skipped: Array<{ path: string; reason: string }> = [];
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
        // Opened and read now so that a named secret (by content) or a file that is not what its
        // path says is refused with this field's name; the content is read again when embedded.
        const file = await openSandboxed(input, {
          purpose: "file",
          roots,
          maxBytes: maxFileBytes,
          field: itemField,
          signal,
        });
        if (file !== undefined) add(file.path);
      } else if (info.isDirectory()) {
        for (const file of await walkDirectory(real, itemField, input, skipped, signal)) add(file);
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
    return { files: result, skipped };
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

  /** All files below `directory` (a realpath inside the sandbox), in walk order. */
  async function walkDirectory(
    directory: string,
    field: string,
    input: string,
    skipped: Array<{ path: string; reason: string }>,
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
    /** Whether `child` is a secret by name; a secret is listed as skipped, never read. */
    const secret = (child: string, ignored: boolean, kind: "file" | "directory"): boolean => {
      const rule = secretRule(child);
      if (rule === undefined) return false;
      // A secret the .gitignore already hides, or a vendored directory, is not worth a line.
      if (!ignored) skipped.push({ path: child, reason: `secret ${kind} (${rule}); not sent to the model` });
      return true;
    };
    const gitignore = (current: string): Promise<IgnoreLayer | undefined> =>
      loadGitignore(current, field, roots, skipped, signal);

    const walk = async (current: string, inherited: readonly IgnoreLayer[]): Promise<void> => {
      signal?.throwIfAborted();
      const own = current === directory ? undefined : await gitignore(current);
      const layers = own === undefined ? inherited : [...inherited, own];

      for (const entry of await listDirectory(current, field)) {
        signal?.throwIfAborted();
        const child = path.join(current, entry.name);
        if (entry.isDirectory()) {
          if (SKIPPED_DIRECTORIES.has(entry.name)) continue;
          const ignored = isIgnored(layers, child, true);
          if (secret(child, ignored, "directory") || ignored) continue;
          await walk(child, layers);
        } else if (entry.isFile() || entry.isSymbolicLink()) {
          // git treats a symlink as a file, whatever it points to.
          const ignored = isIgnored(layers, child, false);
          if (secret(child, ignored, "file") || ignored) continue;
          if (entry.isFile()) {
            push(child);
          } else {
            const target = await resolveLinkedFile(child, field);
            if (target !== undefined) push(target);
          }
        }
        // Sockets, FIFOs and devices are not source files: nothing to read.
      }
    };

    await walk(directory, await startingLayers(directory, field, skipped, signal));
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
    skipped: Array<{ path: string; reason: string }>,
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
      const layer = await loadGitignore(ancestor, field, roots, skipped, signal);
      if (layer !== undefined) ancestors.push(layer);
    }
    const own = await loadGitignore(directory, field, roots, skipped, signal);
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

  return { expand, expandDetailed, open: openFile, read, embed };
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

/**
 * The rules of `directory/.gitignore`, read through the sandbox (at most MAX_GITIGNORE_BYTES): a
 * `.gitignore` that is missing gives no rules; one that cannot be used (a FIFO, a link to a device
 * or outside the roots, too large, unreadable) gives no rules and is listed in `skipped`.
 */
async function loadGitignore(
  directory: string,
  field: string,
  roots: readonly string[],
  skipped: Array<{ path: string; reason: string }>,
  signal: AbortSignal | undefined,
): Promise<IgnoreLayer | undefined> {
  const file = path.join(directory, ".gitignore");
  let opened: SandboxedFile | undefined;
  try {
    opened = await openSandboxed(file, {
      purpose: "gitignore",
      roots,
      maxBytes: MAX_GITIGNORE_BYTES,
      field,
      signal,
      optional: true,
    });
  } catch (error) {
    if (signal?.aborted) signal.throwIfAborted();
    // A directory called .gitignore holds no rules.
    if (ExaiError.is(error) && error.details.kind === "directory") return undefined;
    if (!ExaiError.is(error)) throw error;
    skipped.push({ path: file, reason: `.gitignore not applied: ${error.message}` });
    return undefined;
  }
  if (opened === undefined) return undefined;
  if (opened.content === undefined) {
    skipped.push({
      path: file,
      reason: `.gitignore not applied: ${formatBytes(opened.size)} exceeds the ${formatBytes(MAX_GITIGNORE_BYTES)} limit`,
    });
    return undefined;
  }
  // Case-sensitive, like git on Linux (core.ignorecase=false).
  return { base: directory, rules: ignore({ ignorecase: false }).add(opened.content.toString("utf8")) };
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
