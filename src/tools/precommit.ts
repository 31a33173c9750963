/**
 * precommit — validates pending git changes before a commit (SPEC §4.2). At every step the tool
 * lists the changed files of the repository at `path`; at the final step it reads the diff
 * (staged, unstaged, or `compare_to...HEAD`) and puts it, bounded, into the expert's prompt.
 */
import { realpath, stat } from "node:fs/promises";
import path from "node:path";
import { z } from "zod";
import { ExaiError, invalidArgument } from "../base/errors.js";
import type { ToolContext } from "./framework.js";
import {
  boundDiff,
  collectChanges,
  gitTopLevel,
  verifyRef,
  type ChangedFile,
  type GitChanges,
  type GitRunOptions,
} from "./git.js";
import { createWorkflowTool } from "./workflow.js";
import { latestExtra, type PreparedStep, type StepRecord } from "./workflow-spec.js";

export const PRECOMMIT_PROMPT = `You are a senior engineer doing the last review before a commit. Another AI agent has validated the pending changes
step by step; its findings, the git diff of the changes and the relevant files (with line numbers) follow. Judge whether the
change is safe to commit: correctness bugs and regressions it introduces (check callers of changed code), incomplete changes
(a renamed symbol still used elsewhere, a config or migration missing), security problems (secrets, injection, unsafe
defaults), error handling, tests that should accompany the change, and leftovers (debug output, commented-out code, TODOs).
Review only what the diff changes and what it breaks; do not re-review untouched code. Cite file:line from the diff or files.
JSON response: {"status":"validation_complete","summary":"...","verdict":"ready_to_commit|needs_changes|blocked",
"issues":[{"severity":"critical|high|medium|low","file":"...","line":N,"description":"...","fix":"..."}],
"missing_tests":["..."],"commit_message_suggestion":"...","positives":["..."]}`;

/** Largest diff put into the prompt, characters (a larger one is cut with a note naming the files left out). */
const MAX_DIFF_CHARS = 200_000;
/** Share of the expert model's context window the diff may take (relevant files take their own share). */
const DIFF_WINDOW_SHARE = 0.2;
/** Conservative characters per token for code and diffs (they tokenise worse than prose). */
const CHARS_PER_TOKEN = 3;
/** Changed files listed in a response; more are counted, not listed. */
const MAX_LISTED_FILES = 200;
/** Time kept back from git so the step can still answer, ms. */
const GIT_MARGIN_MS = 100;

const SEVERITY_FILTERS = ["critical", "high", "medium", "low", "all"] as const;

export const precommitTool = createWorkflowTool({
  name: "precommit",
  title: "Pre-commit validation",
  pauseNoun: "validation",
  description:
    "Validate pending git changes before a commit: path = the repository (step 1); each step lists changed files; at the final step an expert reviews the diff (staged/unstaged, or compare_to...HEAD).",
  extraShape: {
    path: z.string().optional().describe("Absolute path of the git repository (required at step 1)"),
    compare_to: z.string().optional().describe("Git ref: diff ref...HEAD instead of staged/unstaged"),
    include_staged: z.boolean().optional().describe("Include staged changes (default true)"),
    include_unstaged: z.boolean().optional().describe("Include unstaged changes (default true)"),
    focus_on: z.string().optional().describe("Areas to emphasise"),
    severity_filter: z.enum(SEVERITY_FILTERS).optional(),
  },
  systemPrompt: PRECOMMIT_PROMPT,
  requiredActions: (step) =>
    step === 1
      ? [
          "Review the changed_files list below and read each changed file around its changes",
          "State the intent of the change (task, commit message) and check the diff does only that",
          "Note files that should have changed but did not (tests, docs, config, migrations)",
        ]
      : [
          "Check the callers and users of every changed function, type or export for breakage",
          "Check that tests cover the change and run them",
          "Look for leftovers: debug output, secrets, commented-out code, TODOs",
          "Record problems in issues_found with severity and file:line",
        ],
  prepareStep: (args, context, previous) => preparePrecommit(args, context, previous),
});

interface PrecommitSettings {
  directory: string;
  compareTo?: string;
  includeStaged: boolean;
  includeUnstaged: boolean;
}

/** Validates the repository settings, lists the changes and, at the final step, reads the diff. */
async function preparePrecommit(
  args: Record<string, unknown>,
  context: ToolContext,
  previous: StepRecord[],
): Promise<PreparedStep> {
  const settings = await resolveSettings(args, context, previous);
  const gitOptions = (): GitRunOptions => ({
    signal: context.signal,
    timeoutMs: context.remainingMs() - GIT_MARGIN_MS,
  });
  const root = await gitTopLevel(settings.directory, gitOptions());
  if (settings.compareTo !== undefined) await verifyRef(settings.directory, settings.compareTo, gitOptions());
  const final = args.next_step_required === false;
  context.progress(final ? "reading the git diff" : "listing changed files");
  const changes = await collectChanges(
    {
      directory: settings.directory,
      root,
      ...(settings.compareTo !== undefined ? { compareTo: settings.compareTo } : {}),
      includeStaged: settings.includeStaged,
      includeUnstaged: settings.includeUnstaged,
      withDiff: final,
    },
    gitOptions,
  );
  const diffLimit = diffLimitFor(context);
  const rendered = final ? renderDiffs(changes, diffLimit) : undefined;
  const compared =
    settings.compareTo !== undefined
      ? [`${settings.compareTo}...HEAD`]
      : [settings.includeStaged ? "staged" : "", settings.includeUnstaged ? "unstaged" : ""].filter(Boolean);
  const result: Record<string, unknown> = {
    repository: root,
    ...(settings.directory !== root ? { scope: settings.directory } : {}),
    compared,
    changed_files: changes.files.slice(0, MAX_LISTED_FILES),
    changed_file_count: changes.files.length,
    ...(changes.files.length > MAX_LISTED_FILES
      ? { changed_files_not_listed: changes.files.length - MAX_LISTED_FILES }
      : {}),
    ...(changes.untracked.length > 0
      ? {
          untracked_files: changes.untracked.slice(0, MAX_LISTED_FILES),
          untracked_file_count: changes.untracked.length,
        }
      : {}),
    ...(changes.files.length === 0
      ? {
          no_changes: `No ${compared.join(" or ")} changes under ${settings.directory}: stage changes (git add), set include_unstaged, or pass compare_to (e.g. main) to validate committed work.`,
        }
      : {}),
    ...(rendered
      ? { diff_chars: rendered.chars, ...(rendered.note ? { diff_note: rendered.note } : {}) }
      : {}),
  };
  if (!rendered) return { result };
  const focus = latestExtra("focus_on", args, previous);
  const severity = latestExtra("severity_filter", args, previous);
  return {
    result,
    promptLines: [
      "",
      "=== PENDING GIT CHANGES ===",
      `Repository: ${root}${settings.directory !== root ? ` (scope: ${settings.directory})` : ""}`,
      `Compared: ${compared.join(", ")}`,
      ...(focus ? [`Focus on: ${String(focus)}`] : []),
      ...(severity && severity !== "all" ? [`Report only severity ≥ ${String(severity)}`] : []),
      `Changed files (${changes.files.length}):`,
      ...changes.files.slice(0, MAX_LISTED_FILES).map((file) => `  ${describeFile(file)}`),
      ...(changes.untracked.length > 0
        ? [`Untracked files (not in the diff): ${changes.untracked.slice(0, 50).join(", ")}`]
        : []),
      ...rendered.lines,
    ],
  };
}

/**
 * The settings of this step: given now, else given at an earlier step of the thread.
 * @throws ExaiError INVALID_ARGUMENT naming `path`, `compare_to` or `include_staged`;
 *   FILE_ACCESS_DENIED (field `path`) when the directory is outside the sandbox.
 */
async function resolveSettings(
  args: Record<string, unknown>,
  context: ToolContext,
  previous: StepRecord[],
): Promise<PrecommitSettings> {
  const given = latestExtra("path", args, previous) as string | undefined;
  if (given === undefined || given.trim() === "") {
    throw invalidArgument(
      "path",
      `required at step 1 (got ${given === undefined ? "nothing" : JSON.stringify(given)}): pass the absolute path of the git repository to validate, e.g. /home/me/project`,
    );
  }
  const compareTo = latestExtra("compare_to", args, previous) as string | undefined;
  const includeStaged = (latestExtra("include_staged", args, previous) as boolean | undefined) ?? true;
  const includeUnstaged = (latestExtra("include_unstaged", args, previous) as boolean | undefined) ?? true;
  if (compareTo === undefined && !includeStaged && !includeUnstaged) {
    throw invalidArgument(
      "include_staged",
      "include_staged and include_unstaged are both false and no compare_to is given, so there is nothing to validate; set one of them to true or pass compare_to",
    );
  }
  const directory = await sandboxedDirectory(given, context);
  return {
    directory,
    ...(compareTo !== undefined && compareTo !== "" ? { compareTo } : {}),
    includeStaged,
    includeUnstaged,
  };
}

/**
 * Resolves `path` to the realpath of a directory the sandbox allows.
 *
 * The file reader checks a path against the sandbox before anything else, but its `expand` would
 * walk a whole repository and `read` refuses directories. So: check existence and kind here, then
 * let `read` run the sandbox; once we know the path is an existing directory, the INVALID_ARGUMENT
 * `read` throws after the sandbox passed can only be its "is a directory" refusal.
 */
async function sandboxedDirectory(input: string, context: ToolContext): Promise<string> {
  if (!path.isAbsolute(input)) {
    throw invalidArgument(
      "path",
      `${JSON.stringify(input)} is not an absolute path; pass the repository's full path, e.g. /home/me/project`,
      { path: input },
    );
  }
  let real: string;
  try {
    real = await realpath(input);
    if (!(await stat(real)).isDirectory()) {
      throw invalidArgument("path", `${JSON.stringify(input)} is a file; pass the repository's directory`, {
        path: input,
      });
    }
  } catch (error) {
    if (ExaiError.is(error)) throw error;
    throw invalidArgument(
      "path",
      `${JSON.stringify(input)} does not exist or cannot be read (${(error as NodeJS.ErrnoException).code ?? String(error)}); pass an existing repository directory`,
      { path: input },
    );
  }
  try {
    await context.files.read(real, context.signal);
  } catch (error) {
    if (ExaiError.is(error) && error.code === "INVALID_ARGUMENT") return real;
    throw error;
  }
  // read() accepted it as a file: the directory was replaced between the checks.
  throw invalidArgument("path", `${JSON.stringify(input)} is not a directory`, { path: input });
}

/** How many characters of diff the expert prompt can take. */
function diffLimitFor(context: ToolContext): number {
  const window = context.model?.model.contextWindow;
  if (window === undefined) return MAX_DIFF_CHARS;
  return Math.min(MAX_DIFF_CHARS, Math.floor(window * DIFF_WINDOW_SHARE * CHARS_PER_TOKEN));
}

/** The diff sections for the prompt within `limit` characters, with a note on anything left out. */
function renderDiffs(changes: GitChanges, limit: number): { lines: string[]; chars: number; note?: string } {
  const lines: string[] = [];
  const omitted: string[] = [];
  const partial: string[] = [];
  let remaining = limit;
  let chars = 0;
  for (const section of changes.diffs) {
    chars += section.text.length;
    const bounded = boundDiff(section.text, remaining);
    remaining -= bounded.text.length;
    omitted.push(...bounded.omitted);
    if (bounded.partial) partial.push(bounded.partial);
    lines.push("", `=== DIFF: ${section.label} ===`, bounded.text.trimEnd() || "(no changes)");
  }
  const secrets = changes.files.filter((file) => file.secret).map((file) => file.path);
  const notes: string[] = [];
  if (omitted.length > 0 || partial.length > 0 || changes.outputTruncated) {
    notes.push(
      `The diff (${chars.toLocaleString("en-US")} characters${changes.outputTruncated ? ", over git's 10 MB read limit" : ""}) exceeds the ${limit.toLocaleString("en-US")}-character limit for this model` +
        (partial.length > 0 ? `; shown in part: ${partial.join(", ")}` : "") +
        (omitted.length > 0 ? `; not shown: ${omitted.join(", ")}` : "") +
        ". Validate the rest in another run (stage fewer files, or use a long-context model such as kimi-k2.6).",
    );
  }
  if (secrets.length > 0)
    notes.push(`Secret files changed; their diff is never sent to a model: ${secrets.join(", ")}.`);
  const note = notes.join(" ");
  if (note) lines.push("", `NOTE: ${note}`);
  return { lines, chars, ...(note ? { note } : {}) };
}

function describeFile(file: ChangedFile): string {
  const name = file.from ? `${file.from} -> ${file.path}` : file.path;
  return `${file.status} ${name} (${file.source}${file.secret ? ", secret: diff withheld" : ""})`;
}
