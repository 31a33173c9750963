/**
 * Directory expansion (SPEC §4.4): user-supplied paths become the realpaths of the files they name,
 * directories walked recursively while honouring `.gitignore` files and leaving out secrets.
 */
import type { Dirent, Stats } from "node:fs";
import { readdir, stat } from "node:fs/promises";
import path from "node:path";

import { ExaiError, invalidArgument } from "../base/errors.js";
import { isIgnored, loadGitignore, startingLayers, type IgnoreLayer } from "./gitignore.js";
import { fileSystemError, openSandboxed } from "./open.js";
import { errorCode, secretRule, type FileSandbox } from "./sandbox.js";

export interface ExpandResult {
  /** Realpaths of the files, as `expand` returns them. */
  files: string[];
  /**
   * What the walk left out and why, never silently: secrets met inside a directory
   * ("secret file (*.pem)") and `.gitignore` files whose rules could not be applied.
   */
  skipped: Array<{ path: string; reason: string }>;
}

/** What expansion needs of its reader: the sandbox, its roots and the reader's limits. */
export interface ExpandContext {
  sandbox: FileSandbox;
  /** The sandbox's allowed roots. */
  roots: readonly string[];
  /** Files larger than this many bytes are not read when named directly. */
  maxFileBytes: number;
  /** Most files one directory argument may expand to (recursively). */
  maxFilesPerDirectory: number;
}

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

/**
 * Validates and expands `paths` (the behaviour of `FileReader.expandDetailed`): named files are
 * opened and checked through the sandbox, directories walked; de-duplicated, in input order.
 * @throws the errors documented on `FileReader.expand`.
 */
export async function expandPaths(
  context: ExpandContext,
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
    const real = await context.sandbox.resolve(input, itemField);
    const info = await statOrThrow(real, itemField, input);
    if (info.isFile()) {
      // Opened and read now so that a named secret (by content) or a file that is not what its
      // path says is refused with this field's name; the content is read again when embedded.
      const file = await openSandboxed(input, {
        purpose: "file",
        roots: context.roots,
        maxBytes: context.maxFileBytes,
        field: itemField,
        signal,
      });
      if (file !== undefined) add(file.path);
    } else if (info.isDirectory()) {
      for (const file of await walkDirectory(context, real, itemField, input, skipped, signal)) add(file);
    } else {
      throw invalidArgument(itemField, `${JSON.stringify(input)} is neither a regular file nor a directory`, {
        path: input,
      });
    }
  }
  return { files: result, skipped };
}

/** All files below `directory` (a realpath inside the sandbox), in walk order. */
async function walkDirectory(
  context: ExpandContext,
  directory: string,
  field: string,
  input: string,
  skipped: Array<{ path: string; reason: string }>,
  signal: AbortSignal | undefined,
): Promise<string[]> {
  const { roots, maxFilesPerDirectory } = context;
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
          const target = await resolveLinkedFile(context.sandbox, child, field);
          if (target !== undefined) push(target);
        }
      }
      // Sockets, FIFOs and devices are not source files: nothing to read.
    }
  };

  await walk(directory, await startingLayers(directory, field, roots, skipped, signal));
  return files;
}

/** The realpath of a symlink met while walking, or undefined when it must be left out. */
async function resolveLinkedFile(
  sandbox: FileSandbox,
  link: string,
  field: string,
): Promise<string | undefined> {
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

async function listDirectory(directory: string, field: string): Promise<Dirent[]> {
  let entries: Dirent[];
  try {
    entries = await readdir(directory, { withFileTypes: true });
  } catch (error) {
    // Removed while we walked: it has no files left to offer.
    if (errorCode(error) === "ENOENT") return [];
    throw fileSystemError(error, field, directory, directory, "read");
  }
  return entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

async function statOrThrow(real: string, field: string, input: string): Promise<Stats> {
  try {
    return await stat(real);
  } catch (error) {
    throw fileSystemError(error, field, input, real, "read");
  }
}
