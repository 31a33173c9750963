/**
 * `.gitignore` handling for directory expansion (SPEC §4.4): each `.gitignore` is read through the
 * sandbox and becomes a layer of rules; layers apply outermost first, as git applies them.
 */
import path from "node:path";

import ignore, { type Ignore } from "ignore";

import { ExaiError } from "../base/errors.js";
import { formatBytes } from "./blocks.js";
import { openSandboxed, type SandboxedFile } from "./open.js";
import { isInsideRoot } from "./sandbox.js";

/** Largest `.gitignore` whose rules are applied, bytes; a larger one is listed as skipped. */
export const MAX_GITIGNORE_BYTES = 256 * 1024;

/** The rules of one .gitignore file, which apply to paths below `base`. */
export interface IgnoreLayer {
  base: string;
  rules: Ignore;
}

/**
 * Whether `absolute` is ignored by the layers, applied outermost first so that a deeper
 * .gitignore can re-include (`!pattern`) what a shallower one ignored, as git does.
 */
export function isIgnored(layers: readonly IgnoreLayer[], absolute: string, isDirectory: boolean): boolean {
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
 * The .gitignore layers that apply to the contents of `directory`: those from its allowed root
 * down to the directory itself. A directory the user named explicitly is walked even when an
 * ancestor's rules ignore it; then only its own rules (and those below) apply.
 */
export async function startingLayers(
  directory: string,
  field: string,
  roots: readonly string[],
  skipped: Array<{ path: string; reason: string }>,
  signal: AbortSignal | undefined,
): Promise<IgnoreLayer[]> {
  // With nested roots the outermost one wins: its rules apply to everything below it.
  const root =
    roots.filter((candidate) => isInsideRoot(directory, candidate)).sort((a, b) => a.length - b.length)[0] ??
    directory;
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

/**
 * The rules of `directory/.gitignore`, read through the sandbox (at most MAX_GITIGNORE_BYTES): a
 * `.gitignore` that is missing gives no rules; one that cannot be used (a FIFO, a link to a device
 * or outside the roots, too large, unreadable) gives no rules and is listed in `skipped`.
 */
export async function loadGitignore(
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
