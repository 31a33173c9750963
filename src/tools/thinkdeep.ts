/** thinkdeep — extended reasoning on a hard problem, validated by an expert model (SPEC §4.2). */
import { z } from "zod";
import { createWorkflowTool } from "./workflow.js";

const THINKDEEP_PROMPT = `You are a senior engineering thought partner. Another AI agent has reasoned about a problem step by step; its
thinking, hypothesis and relevant files follow. Challenge its assumptions, find gaps and risks, weigh alternatives with their
trade-offs, and give a clear recommendation grounded in the code (cite file:line). Be concrete; avoid generic advice.
JSON response: {"status":"analysis_complete","summary":"...","assessment":"...","gaps":["..."],"alternatives":[{"option":"...",
"pros":"...","cons":"..."}],"recommendation":"...","risks":["..."]}`;

export const thinkdeepTool = createWorkflowTool({
  name: "thinkdeep",
  title: "Think deep",
  pauseNoun: "thinkdeep",
  description:
    "Multi-step deep reasoning on a hard problem (architecture, trade-offs, tricky bugs); an expert model challenges and extends your thinking at the final step.",
  extraShape: {
    problem_context: z.string().optional().describe("Background on the problem"),
    focus_areas: z.array(z.string()).optional().describe("e.g. performance, security, architecture"),
  },
  systemPrompt: THINKDEEP_PROMPT,
  requiredActions: (step) =>
    step === 1
      ? [
          "State the problem and constraints precisely",
          "Gather the code and facts that bear on it",
          "Write down the first hypothesis and its assumptions",
        ]
      : [
          "Test the assumptions against the evidence",
          "Consider at least one alternative approach",
          "Update hypothesis and confidence",
        ],
  describeExtras: (args) =>
    [
      args.problem_context ? `Problem context: ${String(args.problem_context)}` : "",
      Array.isArray(args.focus_areas) && args.focus_areas.length
        ? `Focus areas: ${args.focus_areas.join(", ")}`
        : "",
    ].filter(Boolean),
});
