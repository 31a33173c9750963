/**
 * refactor — step-by-step refactoring analysis (code smells, decomposition, modernisation,
 * organisation) with an expert refactoring plan at the final step (SPEC §4.2).
 */
import { z } from "zod";
import { planBudget } from "../memory/conversation.js";
import { createWorkflowTool } from "./workflow.js";
import { latestExtra } from "./workflow-spec.js";
import type { ToolContext } from "./framework.js";

const REFACTOR_TYPES = ["codesmells", "decompose", "modernize", "organization"] as const;
type RefactorType = (typeof REFACTOR_TYPES)[number];

export const REFACTOR_PROMPT = `You are a senior engineer planning a refactoring. Another AI agent has examined the code step by step; its findings and
the relevant files (with line numbers) follow. Find the refactorings that pay off: code smells (duplication, long parameter
lists, feature envy, dead code, primitive obsession), decomposition of oversized files/classes/functions (roughly: files over
1,500 lines, classes over 300, functions over 80 or nested more than 4 deep), modernisation to current language and library
idioms, and organisation (module boundaries, naming, cohesion). Every proposal must keep behaviour identical; say how to
verify it (existing tests, a test to add first). Prefer a few high-value changes over many cosmetic ones; order them so each
step leaves the code working. Follow the project's existing style and any style-guide examples given. Cite file:line.
JSON response: {"status":"refactor_analysis_complete","summary":"...","refactor_opportunities":[{"id":"refactor-001",
"type":"codesmells|decompose|modernize|organization","severity":"critical|high|medium|low","file":"...","start_line":N,
"end_line":N,"issue":"...","suggestion":"...","rationale":"...","code_to_replace":"...","replacement_code":"...",
"verification":"..."}],"priority_sequence":["refactor-001"],"risks":["..."],"next_actions":["..."]}`;

const TYPE_ACTIONS: Record<RefactorType, { first: string; later: string }> = {
  codesmells: {
    first:
      "List code smells with file:line: duplication, long functions and parameter lists, dead code, magic values",
    later: "Confirm each smell is real (not a deliberate trade-off) and sketch the behaviour-preserving fix",
  },
  decompose: {
    first:
      "Measure the largest files, classes and functions (lines, nesting, responsibilities) and list them",
    later:
      "For each oversized unit, name the responsibilities to split out and the seams (interfaces) between them",
  },
  modernize: {
    first:
      "Note the language/runtime/library versions in use and code written for older ones (callbacks, var, legacy APIs)",
    later:
      "Check that each modern replacement is available in the supported versions and keeps behaviour identical",
  },
  organization: {
    first: "Map modules, their dependencies and naming; note misplaced code and circular or upward imports",
    later: "Propose the target layout and the order of moves so every intermediate state still builds",
  },
};

export const refactorTool = createWorkflowTool({
  name: "refactor",
  title: "Refactor",
  pauseNoun: "refactoring",
  description:
    "Step-by-step refactoring analysis (codesmells | decompose | modernize | organization); at the final step an expert model proposes ordered, behaviour-preserving refactorings.",
  extraShape: {
    refactor_type: z.enum(REFACTOR_TYPES).optional().describe("Kind of refactoring (default codesmells)"),
    focus_areas: z.array(z.string()).optional().describe("e.g. performance, readability, testability"),
    style_guide_examples: z
      .array(z.string())
      .optional()
      .describe("Absolute paths of files whose style to follow"),
  },
  systemPrompt: REFACTOR_PROMPT,
  requiredActions(step, _total, args) {
    const type = (args.refactor_type as RefactorType | undefined) ?? "codesmells";
    const focus = Array.isArray(args.focus_areas) && args.focus_areas.length > 0;
    return step === 1
      ? [
          "Read the code in scope and understand what it does and who calls it",
          TYPE_ACTIONS[type].first,
          "Find the tests that cover this code (refactoring without tests needs a test first)",
          ...(focus ? [`Keep the focus areas in view: ${(args.focus_areas as string[]).join(", ")}`] : []),
        ]
      : [
          TYPE_ACTIONS[type].later,
          "Rank the opportunities by value and risk; drop cosmetic ones",
          "Update relevant_files, issues_found and confidence",
        ];
  },
  async prepareStep(args, context, previous) {
    const examples = latestExtra("style_guide_examples", args, previous) as string[] | undefined;
    // Validate the example paths at the step that names them, not later at the expert call.
    const paths = examples?.length
      ? await context.files.expand(examples, "style_guide_examples", context.signal)
      : [];
    if (args.next_step_required) return {};
    const type = latestExtra("refactor_type", args, previous) as string | undefined;
    const focus = latestExtra("focus_areas", args, previous) as string[] | undefined;
    return {
      promptLines: [
        "",
        "=== REFACTORING PARAMETERS ===",
        `Refactor type: ${type ?? "codesmells (default)"}`,
        ...(focus?.length ? [`Focus areas: ${focus.join(", ")}`] : []),
        ...(await styleExamples(paths, context)),
      ],
    };
  },
});

/** The style-guide example files, embedded within a small share of the expert's context window. */
async function styleExamples(paths: string[], context: ToolContext): Promise<string[]> {
  if (paths.length === 0 || !context.model) return [];
  // A quarter of the files budget: examples show style, they need not be complete.
  const tokenBudget = Math.floor(planBudget(context.model.model.contextWindow).files / 4);
  const embedded = await context.files.embed(paths, {
    tokenBudget,
    countTokens: (text) => context.services.tokens.count(text),
    signal: context.signal,
  });
  return [
    "",
    "=== STYLE GUIDE EXAMPLES (follow this style) ===",
    embedded.text,
    ...embedded.skipped.map((item) => `(not included: ${item.path}: ${item.reason})`),
  ];
}
