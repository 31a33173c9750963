/** analyze — code and architecture analysis with an expert assessment at the final step (SPEC §4.2). */
import { z } from "zod";
import { createWorkflowTool } from "./workflow.js";

const ANALYZE_PROMPT = `You are a principal engineer analysing a codebase. Another AI agent has examined it step by step; its findings and the
relevant files (with line numbers) follow. Assess architecture, design, coupling, scalability, performance, security posture
and maintainability. Separate real, material problems from style. Recommend concrete, prioritised changes with file:line.
JSON response: {"status":"analysis_complete","summary":"...","strengths":["..."],"risks":[{"severity":"high|medium|low",
"area":"...","description":"...","recommendation":"..."}],"quick_wins":["..."],"long_term":["..."]}`;

export const analyzeTool = createWorkflowTool({
  name: "analyze",
  title: "Analyze",
  pauseNoun: "analysis",
  description:
    "Step-by-step code/architecture analysis (design, performance, security, maintainability); an expert model assesses your findings and files at the final step.",
  extraShape: {
    analysis_type: z.enum(["architecture", "performance", "security", "quality", "general"]).optional(),
    output_format: z.enum(["summary", "detailed", "actionable"]).optional(),
  },
  systemPrompt: ANALYZE_PROMPT,
  requiredActions: (step) =>
    step === 1
      ? [
          "Map the structure: modules, entry points, dependencies",
          "Identify the main data flows and boundaries",
          "Note first strengths and concerns",
        ]
      : [
          "Examine the concerns in depth with file:line evidence",
          "Check scalability, error handling and coupling",
          "Update relevant_files, issues_found and confidence",
        ],
  describeExtras: (args) =>
    [
      args.analysis_type ? `Analysis type: ${String(args.analysis_type)}` : "",
      args.output_format ? `Output format: ${String(args.output_format)}` : "",
    ].filter(Boolean),
});
