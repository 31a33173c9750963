/**
 * testgen — step-by-step test design: the agent studies the code under test and its existing
 * tests; at the final step an expert model writes the test plan and test code (SPEC §4.2).
 */
import { z } from "zod";
import { createWorkflowTool } from "./workflow.js";
import { latestExtra } from "./workflow-spec.js";

const TEST_TYPES = ["unit", "integration", "e2e", "property", "regression", "performance"] as const;

export const TESTGEN_PROMPT = `You are a senior test engineer. Another AI agent has studied the code under test step by step; its findings and the
relevant files (with line numbers) follow. Design tests that would catch real bugs: the main behaviour, boundaries (empty,
one, many, limits, off-by-one), invalid input and error paths, state and ordering, concurrency and time (use fake timers),
resource cleanup, and any bug the agent suspects (write the test that fails today). Use the project's test framework and
conventions exactly as its existing tests do (imports, file naming, fixtures, assertion style); if none exists, use the
framework given or the language's standard one. Tests must be deterministic and fast; mock only at process boundaries
(network, clock, filesystem) and prefer real collaborators. Do not test implementation details. Cite file:line.
JSON response: {"status":"test_generation_complete","summary":"...","framework":"...","test_plan":[{"target":"file:function",
"scenarios":[{"name":"...","type":"unit|integration|e2e|property|regression|performance","given":"...","expect":"...",
"why":"..."}]}],"test_files":[{"path":"...","content":"complete test file"}],"suspected_bugs":["..."],
"fixtures_needed":["..."],"coverage_gaps":["..."]}`;

export const testgenTool = createWorkflowTool({
  name: "testgen",
  title: "Test generation",
  pauseNoun: "test_analysis",
  description:
    "Step-by-step test generation: you study the code under test and existing tests; at the final step an expert model designs the scenarios and writes the tests in your framework.",
  extraShape: {
    test_framework: z
      .string()
      .optional()
      .describe("e.g. vitest, jest, pytest (default: what the project uses)"),
    test_types: z.array(z.enum(TEST_TYPES)).optional().describe("Kinds of tests wanted (default unit)"),
  },
  systemPrompt: TESTGEN_PROMPT,
  requiredActions(step, _total, args) {
    const types = (args.test_types as string[] | undefined) ?? [];
    return step === 1
      ? [
          "Read the code under test: public functions, their inputs, outputs, side effects and error paths",
          "Find the existing tests and note the framework, file naming, helpers and assertion style",
          args.test_framework
            ? `Confirm how ${String(args.test_framework)} is configured and run in this project`
            : "Identify the test framework and how tests are run (package.json scripts, config files)",
        ]
      : [
          "Enumerate the code paths, boundary values and failure modes still untested",
          "Decide what must be faked (network, clock, filesystem) and what can run for real",
          ...(types.includes("integration") || types.includes("e2e")
            ? ["Identify the set-up the integration/e2e tests need (servers, data, cleanup)"]
            : []),
          "Update relevant_files with the code under test and one representative existing test",
        ];
  },
  prepareStep(args, _context, previous) {
    if (args.next_step_required) return {};
    const framework = latestExtra("test_framework", args, previous) as string | undefined;
    const types = latestExtra("test_types", args, previous) as string[] | undefined;
    return {
      promptLines: [
        "",
        "=== TEST PARAMETERS ===",
        `Test framework: ${framework ?? "the one the project already uses (see the relevant files)"}`,
        `Test types: ${types?.length ? types.join(", ") : "unit (default)"}`,
      ],
    };
  },
});
