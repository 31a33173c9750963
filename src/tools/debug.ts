/** debug — systematic root-cause investigation with an expert check of the hypothesis (SPEC §4.2). */
import { createWorkflowTool } from "./workflow.js";

const DEBUG_PROMPT = `You are an expert debugger. Another AI agent has investigated a bug step by step; its evidence, hypothesis and the
relevant files (with line numbers) follow. Find the root cause: test the hypothesis against the code, trace the failing path,
consider alternative causes ranked by likelihood, and propose the minimal fix plus a regression test. Cite file:line.
JSON response: {"status":"analysis_complete","summary":"...","root_cause":"...","confidence":"low|medium|high",
"hypotheses":[{"name":"...","likelihood":"high|medium|low","evidence":"...","file":"...","line":N,"fix":"..."}],
"regression_test":"...","next_steps":["..."]}`;

export const debugTool = createWorkflowTool({
  name: "debug",
  title: "Debug",
  pauseNoun: "investigation",
  description:
    "Root-cause debugging in steps: you gather evidence and a hypothesis; at the final step an expert model checks it against the relevant files.",
  systemPrompt: DEBUG_PROMPT,
  requiredActions: (step) =>
    step === 1
      ? [
          "Reproduce or describe the failure precisely (inputs, error, stack trace)",
          "Locate the code on the failing path and read it",
          "Form a first hypothesis and note what would confirm or refute it",
        ]
      : [
          "Test the current hypothesis against the code and logs",
          "Trace the data/control flow to the point where behaviour diverges",
          "Update hypothesis, relevant_files and confidence",
        ],
});
