/** codereview — step-by-step code review with an expert review at the final step (SPEC §4.2). */
import { z } from "zod";
import { createWorkflowTool } from "./workflow.js";

const CODEREVIEW_PROMPT = `You are an expert code reviewer. Another AI agent has investigated the code step by step; its findings and the
relevant files (with line numbers) follow. Review for correctness bugs, security flaws, performance problems, concurrency
and resource leaks, error handling, maintainability and tests. Verify the agent's findings against the code: confirm, correct
or reject each; add what it missed. Be specific: cite file:line, explain impact, give a concrete fix. Do not invent issues.
JSON response: {"status":"review_complete","summary":"...","issues":[{"severity":"critical|high|medium|low","file":"...",
"line":N,"description":"...","fix":"..."}],"positives":["..."],"top_priorities":["..."]}`;

export const codereviewTool = createWorkflowTool({
  name: "codereview",
  title: "Code review",
  pauseNoun: "code_review",
  description:
    "Step-by-step code review: you investigate the code across steps (findings, issues_found, relevant_files); at the final step an expert model reviews the files and your findings.",
  extraShape: {
    review_type: z.enum(["full", "security", "performance", "quick"]).optional(),
    focus_on: z.string().optional().describe("Areas to emphasise"),
    standards: z.string().optional().describe("Coding standards to enforce"),
    severity_filter: z.enum(["critical", "high", "medium", "low", "all"]).optional(),
  },
  systemPrompt: CODEREVIEW_PROMPT,
  requiredActions: (step) =>
    step === 1
      ? [
          "Read every file in scope and understand its purpose and structure",
          "Note the main entry points, data flow and error handling",
          "List initial quality, security and performance concerns with file:line",
        ]
      : [
          "Verify each suspected issue in the code (file:line) and rate its severity",
          "Check edge cases, error paths, resource handling and concurrency",
          "Update issues_found, relevant_files and confidence",
        ],
  describeExtras: (args) =>
    [
      args.review_type ? `Review type: ${String(args.review_type)}` : "",
      args.focus_on ? `Focus on: ${String(args.focus_on)}` : "",
      args.standards ? `Standards: ${String(args.standards)}` : "",
      args.severity_filter ? `Report only severity ≥ ${String(args.severity_filter)}` : "",
    ].filter(Boolean),
});
