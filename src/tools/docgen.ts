/**
 * docgen — guides the calling agent through documenting code file by file, without a model
 * (SPEC §4.1). Step 1 is discovery (count the files that need documentation); every later step
 * documents files and raises `num_files_documented`. Statuses:
 * - `pause_for_documentation` — intermediate step;
 * - `docgen_incomplete` — the agent tried to finish with files still undocumented (it must go on);
 * - `docgen_complete` — every counted file is documented.
 */
import { z } from "zod";
import { invalidArgument } from "../base/errors.js";
import { createWorkflowTool } from "./workflow.js";
import { latestExtra, type StepRecord } from "./workflow-spec.js";

interface DocgenOptions {
  complexity: boolean;
  flow: boolean;
  updateExisting: boolean;
  inlineComments: boolean;
}

function options(args: Record<string, unknown>, previous: StepRecord[] = []): DocgenOptions {
  const flag = (name: string) => (latestExtra(name, args, previous) as boolean | undefined) ?? true;
  return {
    complexity: flag("document_complexity"),
    flow: flag("document_flow"),
    updateExisting: flag("update_existing"),
    inlineComments: flag("comments_on_complex_logic"),
  };
}

function documentingActions(args: Record<string, unknown>): string[] {
  const chosen = options(args);
  const done = Number(args.num_files_documented ?? 0);
  const total = Number(args.total_files_to_document ?? 0);
  return [
    `Document the next file completely (${done} of ${total} done so far): every public function, class, method and module, in the project's doc style`,
    ...(chosen.complexity ? ["State time/space complexity (Big-O) for every non-trivial algorithm"] : []),
    ...(chosen.flow ? ["Say who calls each function and what it calls, where that is not obvious"] : []),
    ...(chosen.updateExisting
      ? ["Correct existing documentation that is wrong or stale; keep what is right"]
      : ["Leave existing documentation as it is; add only what is missing"]),
    ...(chosen.inlineComments ? ["Add inline comments explaining why for complex or surprising logic"] : []),
    "Change only documentation and comments, never behaviour",
    "Raise num_files_documented only when a file is fully documented; list it in files_checked",
  ];
}

export const docgenTool = createWorkflowTool({
  name: "docgen",
  title: "Documentation generation",
  pauseNoun: "documentation",
  usesExpert: false,
  description:
    "Document code file by file (no model): step 1 counts files (total_files_to_document); later steps document them and raise num_files_documented; completion is refused until all are done.",
  extraShape: {
    num_files_documented: z.number().int().min(0).describe("Files fully documented so far"),
    total_files_to_document: z.number().int().min(0).describe("Files needing docs (from step 1)"),
    document_complexity: z.boolean().optional().describe("Big-O notes (default true)"),
    document_flow: z.boolean().optional().describe("Call-flow notes (default true)"),
    update_existing: z.boolean().optional().describe("Fix stale docs (default true)"),
    comments_on_complex_logic: z.boolean().optional().describe("Inline comments (default true)"),
  },
  systemPrompt: "",
  requiredActions(step, _total, args) {
    if (step === 1) {
      return [
        "Discover every file in scope that needs documentation; list them in files_checked, do not document yet",
        "Set total_files_to_document to that count and num_files_documented to 0",
        "Note the project's documentation conventions (JSDoc, docstrings, README sections) to follow",
      ];
    }
    return documentingActions(args);
  },
  prepareStep(args) {
    const done = args.num_files_documented as number;
    const total = args.total_files_to_document as number;
    if (done > total) {
      throw invalidArgument(
        "num_files_documented",
        `${done} is more than total_files_to_document (${total}); raise total_files_to_document if discovery missed files`,
      );
    }
    return {};
  },
  complete(steps, args) {
    const done = args.num_files_documented as number;
    const total = args.total_files_to_document as number;
    const stepNumber = args.step_number as number;
    if (done < total) {
      return {
        status: "docgen_incomplete",
        next_step_required: true,
        files_documented: done,
        total_files_to_document: total,
        required_actions: documentingActions(args),
        next_steps: `Documentation is not complete: ${done} of ${total} files are documented, ${total - done} remain. Do not finish yet: document the remaining files, then call docgen again with step_number ${stepNumber + 1}, a raised total_steps, next_step_required true until the last file, and num_files_documented updated.`,
      };
    }
    const files = [...new Set(steps.flatMap((step) => [...step.files_checked, ...step.relevant_files]))];
    const chosen = options(args, steps);
    return {
      status: "docgen_complete",
      next_step_required: false,
      files_documented: done,
      total_files_to_document: total,
      documentation_summary: [
        total === 0
          ? "Discovery found no files that need documentation."
          : `${done} of ${total} files documented in ${steps.length} steps.`,
        `Options: complexity ${chosen.complexity ? "on" : "off"}, call flow ${chosen.flow ? "on" : "off"}, update existing ${chosen.updateExisting ? "on" : "off"}, inline comments ${chosen.inlineComments ? "on" : "off"}.`,
        ...(files.length > 0 ? [`Files: ${files.join(", ")}`] : []),
        ...steps.map((step) => `Step ${step.step_number}: ${step.findings}`),
      ].join("\n"),
      next_steps:
        "Summarise for the user what was documented, per file; run the project's build or linter to check the comments did not break anything.",
    };
  },
});
