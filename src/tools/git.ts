/**
 * Reading a repository's pending changes for precommit, through the git CLI.
 *
 * Safety: git runs through `execFile` (never a shell) with fixed arguments; the only user-supplied
 * values are the directory (after the sandbox has accepted it) and a ref that must match a strict
 * pattern, may not start with "-", and must name a commit. Options that would let a repository's
 * own config run programs are switched off (`--no-ext-diff`, `--no-textconv`,
 * `core.fsmonitor=false`), and `--no-optional-locks` keeps us from taking the index lock while
 * the user works in the same repository. Secret files never leave git: their diffs are excluded by
 * pathspec, so only their names are reported.
 */
import { execFile } from "node:child_process";
import path from "node:path";
import { ExaiError, formatSeconds, invalidArgument } from "../base/errors.js";
import { isSecretPath } from "../files/sandbox.js";
import { abortReason, timeoutError } from "../timing/deadline.js";

/** Largest git output read, bytes; a bigger diff is cut (and says so), never fails the call. */
const GIT_MAX_BUFFER = 10 * 1024 * 1024;
/** Refs we pass to git: branch, tag, sha, HEAD~2, origin/main, v1.2.3, main@{…} excluded. */
const REF_PATTERN = /^[\w./@^~-]+$/;
/**
 * Pathspecs that keep secret files out of the diff; they mirror `isSecretPath` (files/sandbox.ts).
 * A leading "**" + "/" in glob magic matches at any depth, including the top directory.
 */
const SECRET_EXCLUDES = [
  ".env*",
  "*.pem",
  "*.key",
  "id_rsa*",
  "id_ed25519*",
  "id_ecdsa*",
  ".npmrc",
  ".pypirc",
  ".netrc",
].map((pattern) => `:(exclude,glob,icase)**/${pattern}`);
const DIFF_FLAGS = ["--no-color", "--no-ext-diff", "--no-textconv"];

export interface GitRunOptions {
  signal: AbortSignal;
  /** Longest a git command may run, ms (the caller passes what is left of its budget). */
  timeoutMs: number;
}

interface GitOutput {
  stdout: string;
  stderr: string;
  exitCode: number;
  /** true when the output exceeded GIT_MAX_BUFFER and was cut there. */
  truncated: boolean;
}

/**
 * Runs `git -C <directory> <args>` without a shell.
 * @returns the output and exit code (a non-zero exit is the caller's to interpret).
 * @throws ExaiError TIMEOUT when git outlives `timeoutMs`; the signal's reason when aborted;
 *   CONFIG_INVALID when git is not installed.
 */
function runGit(directory: string, args: readonly string[], options: GitRunOptions): Promise<GitOutput> {
  const timeoutMs = Math.max(1, Math.floor(options.timeoutMs));
  const fullArgs = [
    "-C",
    directory,
    "--no-optional-locks",
    "-c",
    "core.fsmonitor=false",
    "-c",
    "core.quotePath=false",
    ...args,
  ];
  return new Promise((resolve, reject) => {
    execFile(
      "git",
      fullArgs,
      {
        signal: options.signal,
        timeout: timeoutMs,
        maxBuffer: GIT_MAX_BUFFER,
        encoding: "utf8",
        windowsHide: true,
      },
      (error, stdout, stderr) => {
        if (!error) {
          resolve({ stdout, stderr, exitCode: 0, truncated: false });
          return;
        }
        const failure = error as NodeJS.ErrnoException & { killed?: boolean; code?: unknown };
        if (options.signal.aborted) {
          reject(abortReason(options.signal, `git ${args[0] ?? ""}`));
        } else if (failure.code === "ERR_CHILD_PROCESS_STDIO_MAXBUFFER") {
          // Node kills git at the limit and hands back what arrived: the caller bounds it further.
          resolve({ stdout, stderr, exitCode: 0, truncated: true });
        } else if (failure.code === "ENOENT") {
          reject(
            new ExaiError(
              "CONFIG_INVALID",
              "git is not installed or not on the PATH of the exai server process; install git (precommit reads the diff with it)",
              { cause: error, details: { variables: ["PATH"] } },
            ),
          );
        } else if (failure.killed) {
          reject(
            timeoutError(
              "tool",
              timeoutMs,
              `git ${args[0] ?? ""} in ${directory} took longer than ${formatSeconds(timeoutMs / 1000)}; narrow the change set (compare_to, fewer staged files)`,
            ),
          );
        } else if (typeof failure.code === "number") {
          resolve({ stdout, stderr, exitCode: failure.code, truncated: false });
        } else {
          reject(
            new ExaiError("INTERNAL", `git ${args[0] ?? ""} could not run: ${error.message}`, {
              cause: error,
            }),
          );
        }
      },
    );
  });
}

/**
 * The top-level directory of the work tree containing `directory`.
 * @throws ExaiError INVALID_ARGUMENT (field `path`) when it is not inside a git work tree.
 */
export async function gitTopLevel(directory: string, options: GitRunOptions): Promise<string> {
  const result = await runGit(directory, ["rev-parse", "--show-toplevel"], options);
  const top = result.stdout.trim();
  if (result.exitCode !== 0 || top === "") {
    const reason = firstLine(result.stderr) || `git exited with ${result.exitCode}`;
    throw invalidArgument(
      "path",
      `${JSON.stringify(directory)} is not inside a git work tree (${reason}); pass the absolute path of the repository to validate`,
      { path: directory },
    );
  }
  return top;
}

/**
 * Checks a user-supplied ref: allowed characters only, no leading "-" (it would be read as an
 * option), and it must name a commit.
 * @throws ExaiError INVALID_ARGUMENT (field `compare_to`) naming the value.
 */
export async function verifyRef(directory: string, ref: string, options: GitRunOptions): Promise<void> {
  if (!REF_PATTERN.test(ref) || ref.startsWith("-")) {
    throw invalidArgument(
      "compare_to",
      `${JSON.stringify(ref)} is not a valid git ref: use a branch, tag or commit such as main, origin/main, v1.2.0, HEAD~3 or a sha (letters, digits and . / _ @ ^ ~ - only, not starting with "-")`,
      { value: ref },
    );
  }
  const result = await runGit(directory, ["rev-parse", "--verify", "--quiet", `${ref}^{commit}`], options);
  if (result.exitCode !== 0) {
    throw invalidArgument(
      "compare_to",
      `${JSON.stringify(ref)} does not name a commit in this repository; check the branch or tag name (git branch -a)`,
      { value: ref },
    );
  }
}

export interface ChangedFile {
  /** Path relative to the repository root. */
  path: string;
  /** git status letter: A added, M modified, D deleted, R renamed, C copied, T type changed, U unmerged. */
  status: string;
  /** Which diff it belongs to. */
  source: "staged" | "unstaged" | "compare";
  /** For renames and copies: the old path. */
  from?: string;
  /** A secret file (its diff is never read). */
  secret?: boolean;
}

interface DiffSection {
  source: ChangedFile["source"];
  /** What was compared, as a git command line, for the prompt. */
  label: string;
  text: string;
}

export interface GitChanges {
  root: string;
  files: ChangedFile[];
  /** Untracked files under the directory (not in any diff until `git add`). */
  untracked: string[];
  /** Present only when diffs were requested. */
  diffs: DiffSection[];
  /** true when git's output hit GIT_MAX_BUFFER. */
  outputTruncated: boolean;
}

interface ChangeRequest {
  /** Realpath of a directory inside the repository; the diff covers this directory's subtree. */
  directory: string;
  root: string;
  compareTo?: string;
  includeStaged: boolean;
  includeUnstaged: boolean;
  /** Read the diffs too (final step), not only the file lists. */
  withDiff: boolean;
}

/**
 * Lists (and optionally reads) the pending changes: `compareTo...HEAD` when a ref is given, else
 * the staged and/or unstaged changes. Limited to the requested directory (pathspec "."), so a
 * sub-directory inside the sandbox never exposes the rest of a repository.
 * @throws ExaiError from runGit; INVALID_ARGUMENT (field `path` or `compare_to`) when git fails.
 */
export async function collectChanges(
  request: ChangeRequest,
  options: () => GitRunOptions,
): Promise<GitChanges> {
  const sources: Array<{ source: ChangedFile["source"]; args: string[]; label: string }> = [];
  if (request.compareTo !== undefined) {
    const range = `${request.compareTo}...HEAD`;
    sources.push({ source: "compare", args: [range], label: `git diff ${range}` });
  } else {
    if (request.includeStaged)
      sources.push({ source: "staged", args: ["--cached"], label: "git diff --cached" });
    if (request.includeUnstaged) sources.push({ source: "unstaged", args: [], label: "git diff" });
  }
  const files: ChangedFile[] = [];
  const diffs: DiffSection[] = [];
  let outputTruncated = false;
  for (const { source, args, label } of sources) {
    const field = source === "compare" ? "compare_to" : "path";
    const names = await checked(
      request.directory,
      ["diff", "--name-status", "-z", ...DIFF_FLAGS, ...args, "--", "."],
      options(),
      field,
    );
    outputTruncated ||= names.truncated;
    for (const file of parseNameStatus(names.stdout, source)) {
      files.push(isSecretPath(path.join(request.root, file.path)) ? { ...file, secret: true } : file);
    }
    if (request.withDiff) {
      const diff = await checked(
        request.directory,
        ["diff", ...DIFF_FLAGS, ...args, "--", ".", ...SECRET_EXCLUDES],
        options(),
        field,
      );
      outputTruncated ||= diff.truncated;
      diffs.push({ source, label, text: diff.stdout });
    }
  }
  const others = await checked(
    request.directory,
    ["ls-files", "--others", "--exclude-standard", "--full-name", "-z", "--", "."],
    options(),
  );
  const untracked = others.stdout.split("\0").filter((name) => name !== "");
  return { root: request.root, files, untracked, diffs, outputTruncated };
}

/**
 * Runs git and requires success. A failure here is about the repository's state or the ref (no
 * merge base with HEAD, a repository without commits), so it is reported against that field.
 */
async function checked(
  directory: string,
  args: string[],
  options: GitRunOptions,
  field: "path" | "compare_to" = "path",
): Promise<GitOutput> {
  const result = await runGit(directory, args, options);
  if (result.exitCode !== 0) {
    throw invalidArgument(
      field,
      `git ${args.slice(0, 2).join(" ")} failed in ${directory} (exit ${result.exitCode}): ${firstLine(result.stderr) || "no message"}; check the repository state${field === "compare_to" ? " and that compare_to shares history with HEAD" : ""}`,
      { path: directory },
    );
  }
  return result;
}

/** Parses `git diff --name-status -z`: "M\0path\0R100\0old\0new\0…". */
export function parseNameStatus(output: string, source: ChangedFile["source"]): ChangedFile[] {
  const tokens = output.split("\0");
  const files: ChangedFile[] = [];
  for (let index = 0; index < tokens.length;) {
    const status = tokens[index++] ?? "";
    if (status === "") continue;
    const letter = status.charAt(0);
    if (letter === "R" || letter === "C") {
      const from = tokens[index++] ?? "";
      const to = tokens[index++] ?? "";
      files.push({ path: to, status: letter, source, from });
    } else {
      files.push({ path: tokens[index++] ?? "", status: letter, source });
    }
  }
  return files;
}

interface BoundedDiff {
  text: string;
  /** Files whose diff was left out for lack of room. */
  omitted: string[];
  /** A file whose diff is shown only in part (a single change bigger than the limit). */
  partial?: string;
  cut: boolean;
}

/**
 * Keeps whole per-file sections of a unified diff while they fit in `limit` characters; the first
 * section that does not fit is cut at a line boundary only when nothing else was kept (so the
 * reviewer sees at least part of a huge single-file change). Names every file left out.
 */
export function boundDiff(diff: string, limit: number): BoundedDiff {
  if (diff.length <= limit) return { text: diff, omitted: [], cut: false };
  const sections = diff.split(/(?=^diff --git )/m);
  const kept: string[] = [];
  const omitted: string[] = [];
  let partial: string | undefined;
  let used = 0;
  for (const section of sections) {
    if (used + section.length <= limit) {
      kept.push(section);
      used += section.length;
    } else if (kept.length === 0 && limit > 0) {
      const head = section.slice(0, limit);
      kept.push(head.slice(0, head.lastIndexOf("\n") + 1));
      partial = sectionFile(section);
      used = limit;
    } else {
      omitted.push(sectionFile(section));
    }
  }
  return { text: kept.join(""), omitted, ...(partial === undefined ? {} : { partial }), cut: true };
}

function sectionFile(section: string): string {
  const end = section.indexOf("\n");
  const header = end < 0 ? section : section.slice(0, end);
  const marker = header.lastIndexOf(" b/");
  return marker >= 0 ? header.slice(marker + 3) : header.replace(/^diff --git /, "");
}

function firstLine(text: string): string {
  return text.trim().split("\n")[0]?.trim() ?? "";
}
