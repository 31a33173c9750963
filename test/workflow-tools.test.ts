/**
 * The remaining workflow tools end to end through the executor: refactor, secaudit and testgen
 * (expert at the final step, against the fake provider), and planner, docgen and tracer (no model).
 */
import { afterEach, describe, expect, it } from "vitest";
import type { RecordedRequest } from "../src/testing/fake-provider.js";
import { REFACTOR_PROMPT } from "../src/tools/refactor.js";
import { SECAUDIT_PROMPT } from "../src/tools/secaudit.js";
import { TESTGEN_PROMPT } from "../src/tools/testgen.js";
import { clock, startTestRuntime, type TestRuntime } from "./support/harness.js";

let harness: TestRuntime | undefined;
afterEach(async () => {
  await harness?.close();
  harness = undefined;
});

async function call(tool: string, args: Record<string, unknown>) {
  if (!harness) throw new Error("no runtime");
  return harness.runtime.executor.call({ tool, arguments: args });
}

/** The system and user texts of a recorded chat request. */
function messages(request: RecordedRequest | undefined): { system: string; user: string } {
  const body = request?.body as { messages?: Array<{ role: string; content: unknown }> } | undefined;
  const text = (role: string) =>
    (body?.messages ?? [])
      .filter((message) => message.role === role)
      .map((message) =>
        typeof message.content === "string" ? message.content : JSON.stringify(message.content),
      )
      .join("\n");
  return { system: text("system"), user: text("user") };
}

const UUID = /^[0-9a-f-]{36}$/;

const EXPERT_TOOLS = [
  {
    tool: "refactor",
    pause: "pause_for_refactoring",
    prompt: REFACTOR_PROMPT,
    stepOneFields: { refactor_type: "decompose", focus_areas: ["readability", "testability"] },
    expectedInPrompt: ["Refactor type: decompose", "Focus areas: readability, testability"],
    badField: "refactor_type",
  },
  {
    tool: "secaudit",
    pause: "pause_for_security_audit",
    prompt: SECAUDIT_PROMPT,
    stepOneFields: {
      audit_focus: "owasp",
      threat_level: "high",
      security_scope: "public REST API handling payments",
      compliance_requirements: ["PCI DSS", "SOC2"],
    },
    expectedInPrompt: [
      "Audit focus: owasp",
      "Threat level: high",
      "Security scope: public REST API handling payments",
      "Compliance requirements: PCI DSS, SOC2",
    ],
    badField: "audit_focus",
  },
  {
    tool: "testgen",
    pause: "pause_for_test_analysis",
    prompt: TESTGEN_PROMPT,
    stepOneFields: { test_framework: "vitest", test_types: ["unit", "property"] },
    expectedInPrompt: ["Test framework: vitest", "Test types: unit, property"],
    badField: "test_types[0]",
  },
] as const;

describe.each(EXPERT_TOOLS)("$tool", (spec) => {
  it("pauses with required actions, then asks the expert with its own prompt, the findings and its fields", async () => {
    harness = await startTestRuntime();
    const first = await call(spec.tool, {
      step: "Examine src/orders for the task",
      step_number: 1,
      total_steps: 2,
      next_step_required: true,
      findings: "STEP-ONE-FINDING: OrderService mixes pricing and persistence",
      ...spec.stepOneFields,
    });
    expect(first.ok).toBe(true);
    expect(first.result?.status).toBe(spec.pause);
    expect(Array.isArray(first.result?.required_actions)).toBe(true);
    expect((first.result?.required_actions as string[]).length).toBeGreaterThan(0);
    expect(first.result?.continuation_id).toMatch(UUID);
    expect(harness.fake.chatRequests()).toHaveLength(0);

    harness.fake.enqueue({ reply: { content: '{"status":"done","summary":"EXPERT-SUMMARY"}' } });
    // The tool-specific fields were given at step 1 only: they must still reach the expert.
    const final = await call(spec.tool, {
      step: "Conclude",
      step_number: 2,
      total_steps: 2,
      next_step_required: false,
      findings: "STEP-TWO-FINDING: pricing rules duplicated in three places",
      confidence: "high",
      model: "glm-4.5-flash",
      continuation_id: first.result?.continuation_id,
    });
    expect(final.ok).toBe(true);
    expect(final.result?.status).toBe("calling_expert_analysis");
    expect(final.result?.[`${spec.tool}_complete`]).toBe(true);
    expect(final.result?.expert_analysis).toEqual({ status: "done", summary: "EXPERT-SUMMARY" });
    const requests = harness.fake.chatRequests();
    expect(requests).toHaveLength(1);
    const { system, user } = messages(requests[0]);
    expect(system).toBe(spec.prompt);
    expect(user).toContain("STEP-ONE-FINDING");
    expect(user).toContain("STEP-TWO-FINDING");
    for (const line of spec.expectedInPrompt) expect(user).toContain(line);
  });

  it("refuses an invalid tool-specific value, naming the field", async () => {
    harness = await startTestRuntime();
    const outcome = await call(spec.tool, {
      step: "s",
      step_number: 1,
      total_steps: 1,
      next_step_required: true,
      findings: "f",
      [spec.badField.replace("[0]", "")]: spec.badField.endsWith("[0]") ? ["smoke"] : "bogus",
    });
    expect(outcome.ok).toBe(false);
    expect(outcome.error?.code).toBe("INVALID_ARGUMENT");
    expect(outcome.error?.field).toBe(spec.badField);
  });

  it("refuses step_number > total_steps and blank findings, naming the field", async () => {
    harness = await startTestRuntime();
    const base = { step: "s", step_number: 1, total_steps: 1, next_step_required: true, findings: "f" };
    const tooFar = await call(spec.tool, { ...base, step_number: 3, total_steps: 2 });
    expect(tooFar.error?.code).toBe("INVALID_ARGUMENT");
    expect(tooFar.error?.field).toBe("step_number");
    const blank = await call(spec.tool, { ...base, findings: "   " });
    expect(blank.error?.code).toBe("INVALID_ARGUMENT");
    expect(blank.error?.field).toBe("findings");
  });
});

describe("planner", () => {
  it("keeps a plan with a revision and a branch in the thread and renders it at the end, without any model", async () => {
    harness = await startTestRuntime();
    const started = clock();
    const one = await call("planner", {
      step: "Add a cache layer in front of the pricing service",
      step_number: 1,
      total_steps: 4,
      next_step_required: true,
    });
    expect(one.result?.status).toBe("pause_for_planning");
    expect(one.result?.required_actions).toEqual(expect.arrayContaining([expect.any(String)]));
    const id = one.result?.continuation_id as string;
    expect(id).toMatch(UUID);
    const two = await call("planner", {
      step: "Use an in-process LRU cache",
      step_number: 2,
      total_steps: 4,
      next_step_required: true,
      continuation_id: id,
    });
    expect(two.result?.status).toBe("pause_for_planning");
    const three = await call("planner", {
      step: "Use a shared Redis cache with a 60 s TTL",
      step_number: 3,
      total_steps: 4,
      next_step_required: true,
      is_step_revision: true,
      revises_step_number: 2,
      continuation_id: id,
    });
    expect(three.result?.status).toBe("pause_for_planning");
    const four = await call("planner", {
      step: "Alternative: precompute prices nightly instead of caching",
      step_number: 4,
      total_steps: 4,
      next_step_required: false,
      is_branch_point: true,
      branch_from_step: 1,
      branch_id: "precompute",
      continuation_id: id,
    });
    expect(four.ok).toBe(true);
    expect(four.result?.status).toBe("planning_complete");
    expect(four.result?.continuation_id).toBe(id);
    const plan = four.result?.plan as {
      steps: Array<{ step_number: number; step: string; revised_at_step?: number; original_step?: string }>;
      branches: Array<{ branch_id: string; branch_from_step: number; steps: Array<{ step: string }> }>;
      revisions: Array<{ step_number: number; revises_step_number: number; previous: string }>;
    };
    expect(plan.steps.map((step) => step.step_number)).toEqual([1, 2]);
    expect(plan.steps[1]).toMatchObject({
      step: "Use a shared Redis cache with a 60 s TTL",
      revised_at_step: 3,
      original_step: "Use an in-process LRU cache",
    });
    expect(plan.branches).toEqual([
      {
        branch_id: "precompute",
        branch_from_step: 1,
        steps: [{ step_number: 4, step: "Alternative: precompute prices nightly instead of caching" }],
      },
    ]);
    expect(plan.revisions).toEqual([
      expect.objectContaining({
        step_number: 3,
        revises_step_number: 2,
        previous: "Use an in-process LRU cache",
      }),
    ]);
    const summary = four.result?.plan_summary as string;
    expect(summary).toContain("2. Use a shared Redis cache with a 60 s TTL [revised at step 3]");
    expect(summary).toContain('Branch "precompute" (alternative after step 1)');
    expect(summary).toContain("step 3 revised step 2");
    expect(harness.fake.requests).toHaveLength(0);
    expect(clock() - started).toBeLessThan(1000);
  });

  it("refuses a revision of a step that does not exist and a branch without a name, naming the field", async () => {
    harness = await startTestRuntime();
    const one = await call("planner", {
      step: "a",
      step_number: 1,
      total_steps: 3,
      next_step_required: true,
    });
    const id = one.result?.continuation_id as string;
    const badRevision = await call("planner", {
      step: "b",
      step_number: 2,
      total_steps: 3,
      next_step_required: true,
      is_step_revision: true,
      revises_step_number: 7,
      continuation_id: id,
    });
    expect(badRevision.error?.code).toBe("INVALID_ARGUMENT");
    expect(badRevision.error?.field).toBe("revises_step_number");
    const badBranch = await call("planner", {
      step: "b",
      step_number: 2,
      total_steps: 3,
      next_step_required: true,
      is_branch_point: true,
      branch_from_step: 1,
      continuation_id: id,
    });
    expect(badBranch.error?.field).toBe("branch_id");
  });
});

describe("docgen", () => {
  it("guides file by file, refuses to complete early, then completes, without any model", async () => {
    harness = await startTestRuntime();
    const base = { total_steps: 3, total_files_to_document: 2 };
    const one = await call("docgen", {
      ...base,
      step: "Discover files needing docs in src/pricing",
      step_number: 1,
      next_step_required: true,
      findings: "2 files lack docs: price.ts, tax.ts",
      num_files_documented: 0,
    });
    expect(one.result?.status).toBe("pause_for_documentation");
    const id = one.result?.continuation_id as string;
    const two = await call("docgen", {
      ...base,
      step: "Document price.ts",
      step_number: 2,
      next_step_required: true,
      findings: "Documented price.ts",
      num_files_documented: 1,
      continuation_id: id,
    });
    expect(two.result?.status).toBe("pause_for_documentation");
    expect((two.result?.required_actions as string[]).join("\n")).toContain("1 of 2 done");
    const early = await call("docgen", {
      ...base,
      step: "Finish",
      step_number: 3,
      next_step_required: false,
      findings: "Done?",
      num_files_documented: 1,
      continuation_id: id,
    });
    expect(early.ok).toBe(true);
    expect(early.result?.status).toBe("docgen_incomplete");
    expect(early.result?.next_step_required).toBe(true);
    expect(early.result?.next_steps).toMatch(/1 of 2 files are documented, 1 remain/);
    const done = await call("docgen", {
      ...base,
      total_steps: 4,
      step: "Document tax.ts",
      step_number: 4,
      next_step_required: false,
      findings: "Documented tax.ts",
      num_files_documented: 2,
      continuation_id: id,
    });
    expect(done.result?.status).toBe("docgen_complete");
    expect(done.result?.documentation_summary).toContain("2 of 2 files documented");
    expect(harness.fake.requests).toHaveLength(0);
  });

  it("refuses more documented files than counted, naming the field", async () => {
    harness = await startTestRuntime();
    const outcome = await call("docgen", {
      step: "s",
      step_number: 1,
      total_steps: 1,
      next_step_required: true,
      findings: "f",
      num_files_documented: 3,
      total_files_to_document: 2,
    });
    expect(outcome.error?.code).toBe("INVALID_ARGUMENT");
    expect(outcome.error?.field).toBe("num_files_documented");
  });
});

describe("tracer", () => {
  it("precision mode: mode-specific instructions, then the rendered trace, without any model", async () => {
    harness = await startTestRuntime();
    const one = await call("tracer", {
      step: "Find the entry point of checkout",
      step_number: 1,
      total_steps: 2,
      next_step_required: true,
      findings: "OrderController.checkout at src/orders.ts:40",
      trace_mode: "precision",
      target_description: "OrderController.checkout, to find where totals change",
      relevant_context: ["OrderController.checkout"],
    });
    expect(one.result?.status).toBe("pause_for_tracing");
    expect((one.result?.required_actions as string[]).join("\n")).toMatch(/entry point/);
    const two = await call("tracer", {
      step: "Follow the calls",
      step_number: 2,
      total_steps: 2,
      next_step_required: false,
      findings: "checkout calls PriceService.total which applies discounts",
      relevant_context: ["PriceService.total", "Discounts.apply"],
      continuation_id: one.result?.continuation_id,
    });
    expect(two.ok).toBe(true);
    expect(two.result?.status).toBe("tracing_complete");
    expect(two.result?.trace_mode).toBe("precision");
    const summary = two.result?.trace_summary as string;
    expect(summary).toContain("TRACE (precision) of OrderController.checkout");
    expect(summary).toMatch(
      /1\. OrderController\.checkout\n\s+2\. PriceService\.total\n\s+3\. Discounts\.apply/,
    );
    expect(two.result?.trace).toMatchObject({
      call_chain: ["OrderController.checkout", "PriceService.total", "Discounts.apply"],
    });
    expect(harness.fake.requests).toHaveLength(0);
  });

  it("dependencies mode gives dependency-mapping instructions; a missing target is refused", async () => {
    harness = await startTestRuntime();
    const base = { step: "s", step_number: 1, total_steps: 2, next_step_required: true, findings: "f" };
    const deps = await call("tracer", {
      ...base,
      trace_mode: "dependencies",
      target_description: "PriceService",
    });
    expect((deps.result?.required_actions as string[]).join("\n")).toMatch(/imports/);
    const missing = await call("tracer", { ...base, trace_mode: "precision" });
    expect(missing.error?.code).toBe("INVALID_ARGUMENT");
    expect(missing.error?.field).toBe("target_description");
  });
});
