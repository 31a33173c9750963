/**
 * `exai smoke` (SPEC §9): the verification run against the configured providers — every listed
 * tool once with a simple request, sequentially, then a parallel batch of mixed calls; a table
 * (or JSON) of tool, status, seconds, budget, outcome and trace_id; failure when any tool failed or
 * ran over its budget. The seeds' plan "sequential → parallel" made into a command.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Config } from "../config/load.js";
import { formatSeconds } from "../base/errors.js";
import type { Logger } from "../base/logging.js";
import type { Executor } from "../runtime/executor.js";
import { createRuntime } from "../runtime/runtime.js";

export interface SmokeRow {
  tool: string;
  phase: "sequential" | "parallel";
  status: "pass" | "fail" | "skip";
  seconds: number;
  budget_s: number;
  /** The result's status on success, the error code on failure, the reason when skipped. */
  outcome: string;
  trace_id: string;
  message?: string;
}

export interface SmokeReport {
  ok: boolean;
  rows: SmokeRow[];
  failed: string[];
  providers: string[];
  wall_s: number;
}

export interface SmokeOptions {
  /** Tools to run (default: every tool of the profile). */
  tools?: string[];
  /** Size of the parallel batch (0 = skip it). */
  parallel: number;
  /** Progress lines (one per finished call). */
  onProgress?: (line: string) => void;
  logger?: Logger;
}

/** Facts the sample arguments need. */
interface SmokeFixture {
  file: string;
  gitRepo: string | undefined;
  models: string[];
}

const workflowStep = (findings: string, extra: Record<string, unknown> = {}) => ({
  step: "Smoke test: confirm the tool answers a one-step request",
  step_number: 1,
  total_steps: 1,
  next_step_required: false,
  findings,
  confidence: "medium",
  ...extra,
});

/**
 * A simple, valid request for each tool, or a reason to skip it.
 * Uploads use one small temporary file (the Store de-duplicates it across runs).
 */
function sampleArguments(
  tool: string,
  fixture: SmokeFixture,
  index = 0,
): Record<string, unknown> | { skip: string } {
  const question = `Smoke test ${index}: in one sentence, what does a deadline protect against?`;
  switch (tool) {
    case "chat":
      return { prompt: question };
    case "challenge":
      return { prompt: "Retries always make a system more reliable." };
    case "thinkdeep":
    case "analyze":
    case "debug":
    case "codereview":
    case "refactor":
    case "secaudit":
    case "testgen":
      return workflowStep(
        `The file ${fixture.file} holds a tiny function; nothing suspicious found (run ${index}).`,
        {
          relevant_files: [fixture.file],
        },
      );
    case "precommit":
      return fixture.gitRepo
        ? workflowStep("Smoke test of the pre-commit validation.", { path: fixture.gitRepo })
        : { skip: "the working directory is not a git repository" };
    case "planner":
      return {
        step: "Plan: verify the server end to end",
        step_number: 1,
        total_steps: 1,
        next_step_required: false,
      };
    case "docgen":
      return workflowStep("Nothing to document in the smoke test.", {
        num_files_documented: 0,
        total_files_to_document: 0,
      });
    case "tracer":
      return workflowStep("Traced the smoke-test function.", {
        trace_mode: "precision",
        target_description: "the add() function",
      });
    case "consensus":
      return fixture.models.length > 0
        ? {
            prompt: "Should a client retry a request that failed with HTTP 400?",
            models: fixture.models
              .slice(0, 2)
              .map((model, i) => ({ model, stance: i === 0 ? "for" : "against" })),
          }
        : { skip: "no model available" };
    case "kimi_upload_and_extract":
      return { files: [fixture.file] };
    case "kimi_multi_file_chat":
      return { prompt: "What does this file define?", files: [fixture.file] };
    case "kimi_intent_analysis":
    case "kimi_capture_headers":
    case "kimi_chat_with_tools":
    case "glm_payload_preview":
      return { prompt: question };
    case "glm_upload_file":
      return { file: fixture.file };
    case "glm_web_search":
      return { query: "Model Context Protocol specification", count: 3 };
    case "smart_file_query":
      return { file: fixture.file, question: "What does this file define?" };
    case "kimi_manage_files":
      return { action: "list" };
    case "toolcall_log_tail":
      return { lines: 5 };
    default:
      return {};
  }
}

/** Tools whose request a parallel batch cycles through (model calls and cheap ones mixed). */
const PARALLEL_MIX = [
  "chat",
  "thinkdeep",
  "listmodels",
  "analyze",
  "challenge",
  "codereview",
  "version",
  "debug",
];

function isRepo(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    execFile("git", ["-C", path, "rev-parse", "--show-toplevel"], { timeout: 5000 }, (error) =>
      resolve(!error),
    );
  });
}

/**
 * Runs the smoke test in-process against the configured providers.
 * Never throws for a failing tool: failures are rows; `ok` is false when any tool failed or ran
 * over its budget.
 */
export async function runSmoke(config: Config, options: SmokeOptions): Promise<SmokeReport> {
  const scratch = mkdtempSync(join(tmpdir(), "exai-smoke-"));
  const file = join(scratch, "smoke_sample.py");
  writeFileSync(
    file,
    'def add(a: int, b: int) -> int:\n    """Return the sum of a and b."""\n    return a + b\n',
  );
  // The sample file lives in a temporary directory: allow it next to the configured roots.
  const runtime = createRuntime(
    { ...config, allowedRoots: [...(config.allowedRoots ?? [config.cwd]), scratch] },
    { mode: "stdio", ...(options.logger ? { logger: options.logger } : {}) },
  );
  const started = performance.now();
  try {
    const executor = runtime.executor;
    const available = executor.tools().map((tool) => tool.name);
    const selected = options.tools && options.tools.length > 0 ? options.tools : available;
    const fixture: SmokeFixture = {
      file,
      gitRepo: (await isRepo(config.cwd)) ? config.cwd : undefined,
      models: pickConsensusModels(
        runtime.registry.available().map((model) => model.id),
        config,
      ),
    };
    const noProvider = runtime.registry.configuredProviders().length === 0;
    const rows: SmokeRow[] = [];
    const total = selected.length + Math.max(0, options.parallel);
    let done = 0;
    const report = (row: SmokeRow) => {
      rows.push(row);
      done++;
      options.onProgress?.(
        `[${done}/${total}] ${row.phase === "parallel" ? "parallel " : ""}${row.tool}: ${row.status} (${row.outcome}) in ${formatSeconds(row.seconds)}`,
      );
    };

    for (const tool of selected) {
      if (!available.includes(tool)) {
        report({
          tool,
          phase: "sequential",
          status: "fail",
          seconds: 0,
          budget_s: 0,
          outcome: "NOT_LISTED",
          trace_id: "",
          message: `${tool} is not enabled in this profile`,
        });
        continue;
      }
      report(await runOne(executor, tool, sampleArguments(tool, fixture), "sequential", noProvider));
    }

    const mix = PARALLEL_MIX.filter(
      (tool) => selected.includes(tool) && rows.some((row) => row.tool === tool && row.status === "pass"),
    );
    if (options.parallel > 0 && mix.length > 0) {
      const batch = Array.from({ length: options.parallel }, (_, index) => {
        const tool = mix[index % mix.length] as string;
        return runOne(executor, tool, sampleArguments(tool, fixture, index + 1), "parallel", noProvider).then(
          report,
        );
      });
      await Promise.all(batch);
    }
    const failed = [...new Set(rows.filter((row) => row.status === "fail").map((row) => row.tool))];
    return {
      ok: failed.length === 0,
      rows,
      failed,
      providers: runtime.registry.configuredProviders(),
      wall_s: Math.round((performance.now() - started) / 10) / 100,
    };
  } finally {
    await runtime.close();
    rmSync(scratch, { recursive: true, force: true });
  }
}

function pickConsensusModels(available: string[], config: Config): string[] {
  const preferred = [config.fastModelDefault, config.longModelDefault].filter((id) => available.includes(id));
  return [...new Set([...preferred, ...available])].slice(0, 2);
}

async function runOne(
  executor: Executor,
  tool: string,
  args: Record<string, unknown> | { skip: string },
  phase: SmokeRow["phase"],
  noProvider: boolean,
): Promise<SmokeRow> {
  const definition = executor.findTool(tool);
  const budgetS = definition ? executor.budgetFor(definition) / 1000 : 0;
  if ("skip" in args && typeof args.skip === "string") {
    return { tool, phase, status: "skip", seconds: 0, budget_s: budgetS, outcome: args.skip, trace_id: "" };
  }
  const started = performance.now();
  const outcome = await executor.call({ tool, arguments: args, sessionId: "smoke", retryOverCapacity: true });
  const seconds = Math.round((performance.now() - started) / 10) / 100;
  const overBudget = seconds > budgetS + 0.05;
  if (outcome.ok) {
    return {
      tool,
      phase,
      status: overBudget ? "fail" : "pass",
      seconds,
      budget_s: budgetS,
      outcome: overBudget ? "OVER_BUDGET" : String(outcome.result?.status ?? "ok"),
      trace_id: outcome.traceId,
    };
  }
  const code = outcome.error?.code ?? "INTERNAL";
  // A provider that is simply not configured is skipped — unless none is, which is a failure.
  const skip = code === "NO_PROVIDER" && !noProvider;
  return {
    tool,
    phase,
    status: skip ? "skip" : "fail",
    seconds,
    budget_s: budgetS,
    outcome: code,
    trace_id: outcome.traceId,
    ...(outcome.error?.message ? { message: outcome.error.message } : {}),
  };
}

/** The report as a plain-text table. */
export function formatSmokeTable(report: SmokeReport): string {
  const header = ["tool", "status", "seconds", "budget", "outcome", "trace_id"];
  const lines = report.rows.map((row) => [
    `${row.phase === "parallel" ? "∥ " : ""}${row.tool}`,
    row.status,
    row.seconds.toFixed(2),
    row.budget_s.toFixed(1),
    row.outcome.length > 40 ? `${row.outcome.slice(0, 39)}…` : row.outcome,
    row.trace_id,
  ]);
  const widths = header.map((title, column) =>
    Math.max(title.length, ...lines.map((line) => (line[column] ?? "").length)),
  );
  const render = (cells: string[]) =>
    cells
      .map((cell, column) => cell.padEnd(widths[column] ?? 0))
      .join("  ")
      .trimEnd();
  const out = [render(header), render(widths.map((width) => "-".repeat(width))), ...lines.map(render)];
  const failures = report.rows.filter((row) => row.status === "fail" && row.message);
  if (failures.length > 0) {
    out.push("", "failures:");
    for (const row of failures) out.push(`  ${row.tool}: ${row.message}`);
  }
  const counts = (status: SmokeRow["status"]) => report.rows.filter((row) => row.status === status).length;
  out.push(
    "",
    `${counts("pass")} passed, ${counts("fail")} failed, ${counts("skip")} skipped in ${report.wall_s} s (providers: ${report.providers.join(", ") || "none"})`,
  );
  if (!report.ok) out.push(`FAILED: ${report.failed.join(", ")}`);
  return out.join("\n");
}
