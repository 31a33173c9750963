/**
 * tracer — guides the calling agent through tracing code, without a model (SPEC §4.1):
 * `precision` follows the execution flow of one function or method (call chain, branches, side
 * effects); `dependencies` maps what a class or module depends on and what depends on it; `ask`
 * (the default) has the agent ask the user which of the two is wanted. Statuses:
 * - `pause_for_tracing` — intermediate step;
 * - `mode_selection_required` — the final step came while trace_mode was still `ask`;
 * - `tracing_complete` — the rendered trace summary built from the steps.
 */
import { z } from "zod";
import { invalidArgument } from "../base/errors.js";
import { createWorkflowTool } from "./workflow.js";
import { latestExtra, type StepRecord } from "./workflow-spec.js";

const TRACE_MODES = ["precision", "dependencies", "ask"] as const;
type TraceMode = (typeof TRACE_MODES)[number];

const ASK_ACTIONS = [
  "Ask the user which trace is wanted: precision (the execution flow of one function or method: calls in order, branches, side effects) or dependencies (what a class or module uses and what uses it)",
  "Call tracer again with trace_mode set to the user's choice and the same target_description",
];

const MODE_ACTIONS: Record<Exclude<TraceMode, "ask">, { first: string[]; later: string[] }> = {
  precision: {
    first: [
      "Locate the entry point of the target (file:line) and read it completely",
      "Note its parameters, return value, the state it reads and the side effects it has",
    ],
    later: [
      "Follow each call in execution order: for every callee record file:line, the condition under which it runs and what it returns",
      "Note branches (if/switch/early return), loops, error paths and async boundaries (await, callbacks, events)",
      "Add each function to relevant_context as Class.method or module.function, in call order",
    ],
  },
  dependencies: {
    first: [
      "Locate the target class or module and list its direct imports and the types it uses",
      "Note how it is constructed or initialised (constructor arguments, factories, DI)",
    ],
    later: [
      "Incoming: find who imports, calls, extends or instantiates the target (search for its name)",
      "Outgoing: find what it calls, creates, reads or writes (other modules, config, database, network)",
      "Add each dependency to relevant_context as 'A -> B (calls|imports|extends|reads)'",
    ],
  },
};

const PRESENTATION: Record<Exclude<TraceMode, "ask">, string> = {
  precision:
    "Present the trace as an indented call tree in execution order, each line 'Class.method (file:line)', marking branches ([if x]), loops, error paths and side effects; end with the observations.",
  dependencies:
    "Present two lists: incoming (A <- B: who depends on the target) and outgoing (A -> C: what the target depends on), each with the kind of dependency and file:line; then note cycles and tight coupling.",
};

function modeOf(args: Record<string, unknown>, previous: StepRecord[]): TraceMode {
  return (latestExtra("trace_mode", args, previous) as TraceMode | undefined) ?? "ask";
}

export const tracerTool = createWorkflowTool({
  name: "tracer",
  title: "Code tracer",
  pauseNoun: "tracing",
  usesExpert: false,
  description:
    "Trace code step by step (no model): precision = execution flow of a function; dependencies = what a class/module uses and what uses it; ask = ask the user first. The final step returns the trace.",
  extraShape: {
    trace_mode: z.enum(TRACE_MODES).optional().describe("precision | dependencies | ask (default ask)"),
    target_description: z.string().optional().describe("What to trace and why (step 1)"),
  },
  systemPrompt: "",
  requiredActions(step, _total, args) {
    const mode = (args.trace_mode as TraceMode | undefined) ?? "ask";
    if (mode === "ask") return ASK_ACTIONS;
    const actions = MODE_ACTIONS[mode];
    return step === 1 ? actions.first : actions.later;
  },
  prepareStep(args, _context, previous) {
    const target = latestExtra("target_description", args, previous) as string | undefined;
    if (target === undefined || target.trim() === "") {
      throw invalidArgument(
        "target_description",
        "required at step 1: say what to trace (function, method, class or module) and why",
      );
    }
    return { result: { trace_mode: modeOf(args, previous), target_description: target } };
  },
  complete(steps, args) {
    const mode = modeOf(args, steps);
    if (mode === "ask") {
      return {
        status: "mode_selection_required",
        next_step_required: true,
        required_actions: ASK_ACTIONS,
        next_steps:
          "The trace mode was never chosen. Ask the user (precision or dependencies), then call tracer again with trace_mode set and next_step_required true.",
      };
    }
    const target = String(latestExtra("target_description", args, steps) ?? "");
    const chain = [...new Set(steps.flatMap((step) => step.relevant_context))];
    const files = [...new Set(steps.flatMap((step) => step.relevant_files))];
    const issues = steps.flatMap((step) => step.issues_found);
    const summary = [
      `TRACE (${mode}) of ${target}`,
      "",
      mode === "precision" ? "Execution flow, in the order traced:" : "Dependencies found:",
      ...(chain.length > 0
        ? chain.map((item, index) => `  ${index + 1}. ${item}`)
        : ["  (none recorded in relevant_context)"]),
      ...(files.length > 0 ? ["", "Files:", ...files.map((file) => `  ${file}`)] : []),
      "",
      "Steps:",
      ...steps.map((step) => `  ${step.step_number}. ${step.step}\n     Findings: ${step.findings}`),
      ...(issues.length > 0
        ? ["", "Observations:", ...issues.map((issue) => `  [${issue.severity}] ${issue.description}`)]
        : []),
    ].join("\n");
    return {
      status: "tracing_complete",
      next_step_required: false,
      trace_mode: mode,
      target_description: target,
      trace: { [mode === "precision" ? "call_chain" : "dependencies"]: chain, files, observations: issues },
      trace_summary: summary,
      presentation_instructions: PRESENTATION[mode],
      next_steps: "Present the trace to the user following presentation_instructions.",
    };
  },
});
