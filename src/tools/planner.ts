/**
 * planner — builds a plan step by step with the calling agent, without any model (SPEC §4.1).
 *
 * The plan lives in the conversation thread: each call appends one turn holding its step, and the
 * plan is rebuilt by replaying those turns. A step may revise an earlier step (it replaces that
 * step's text; the old text is kept in `revisions`) or start / continue a named branch (an
 * alternative path that forks after `branch_from_step`). Statuses:
 * - `pause_for_planning` — intermediate step (also when `more_steps_needed` is true);
 * - `planning_complete` — final step: the whole plan, as structure and as rendered text.
 */
import { z } from "zod";
import { invalidArgument } from "../base/errors.js";
import type { Thread } from "../store/store.js";
import { continuationField, loadThread, oversizedPrompt, recordTurns } from "./common.js";
import { defineTool } from "./framework.js";

const schema = z.object({
  step: z
    .string()
    .trim()
    .min(1, "must not be blank")
    .describe("This planning step: the action, decision or sub-plan"),
  step_number: z.number().int().min(1).describe("Current step, from 1"),
  total_steps: z.number().int().min(1).describe("Estimated total steps (raise it when the plan grows)"),
  next_step_required: z.boolean().describe("true while planning continues; false at the final step"),
  is_step_revision: z.boolean().optional().describe("This step replaces an earlier one"),
  revises_step_number: z.number().int().min(1).optional().describe("The step this one replaces"),
  is_branch_point: z.boolean().optional().describe("This step starts an alternative path"),
  branch_from_step: z.number().int().min(1).optional().describe("The step the branch forks after"),
  branch_id: z.string().trim().min(1).max(64).optional().describe("Name of the branch, e.g. use-redis"),
  more_steps_needed: z.boolean().optional().describe("The estimate was too low: more steps will follow"),
  continuation_id: continuationField,
});
type PlannerArgs = z.infer<typeof schema>;

/** One call's contribution, as stored in the thread turn. */
interface PlanEntry {
  step_number: number;
  total_steps: number;
  step: string;
  revises_step_number?: number;
  branch_id?: string;
  branch_from_step?: number;
}

interface PlanStep {
  step_number: number;
  step: string;
  /** Set when a later step replaced this one's text. */
  revised_at_step?: number;
  original_step?: string;
}

interface PlanBranch {
  branch_id: string;
  branch_from_step: number;
  steps: PlanStep[];
}

interface PlanRevision {
  step_number: number;
  revises_step_number: number;
  branch_id?: string;
  previous: string;
  replacement: string;
}

export interface Plan {
  steps: PlanStep[];
  branches: PlanBranch[];
  revisions: PlanRevision[];
}

interface PlanState {
  main: Map<number, PlanStep>;
  branches: Map<string, { from: number; steps: Map<number, PlanStep> }>;
  revisions: Map<number, PlanRevision>;
}

const emptyState = (): PlanState => ({ main: new Map(), branches: new Map(), revisions: new Map() });

/** The plan entries recorded in a thread, oldest first. */
function planEntries(thread: Thread | undefined): PlanEntry[] {
  return (thread?.turns ?? [])
    .filter((turn) => turn.toolName === "planner" && turn.data?.planner !== undefined)
    .map((turn) => turn.data?.planner as PlanEntry);
}

/** Replays entries into the plan state; the latest entry for a step number wins. */
function replay(entries: PlanEntry[]): PlanState {
  let state = emptyState();
  for (const entry of entries) {
    // A fresh step 1 on the main path starts a new plan in the same thread.
    if (entry.step_number === 1 && entry.revises_step_number === undefined && entry.branch_id === undefined)
      state = emptyState();
    apply(state, entry);
  }
  return state;
}

function apply(state: PlanState, entry: PlanEntry): void {
  // Each step number lives in one place: a re-sent step replaces whatever it was before.
  state.main.delete(entry.step_number);
  state.revisions.delete(entry.step_number);
  for (const branch of state.branches.values()) branch.steps.delete(entry.step_number);

  if (entry.revises_step_number !== undefined) {
    const path = entry.branch_id !== undefined ? state.branches.get(entry.branch_id)?.steps : state.main;
    const target = path?.get(entry.revises_step_number);
    if (!path || !target) return; // validated before recording; an old thread may still hold one
    state.revisions.set(entry.step_number, {
      step_number: entry.step_number,
      revises_step_number: entry.revises_step_number,
      ...(entry.branch_id !== undefined ? { branch_id: entry.branch_id } : {}),
      previous: target.step,
      replacement: entry.step,
    });
    path.set(entry.revises_step_number, {
      step_number: target.step_number,
      step: entry.step,
      revised_at_step: entry.step_number,
      original_step: target.original_step ?? target.step,
    });
    return;
  }
  const step: PlanStep = { step_number: entry.step_number, step: entry.step };
  if (entry.branch_id !== undefined) {
    let branch = state.branches.get(entry.branch_id);
    if (!branch) {
      branch = { from: entry.branch_from_step ?? 0, steps: new Map() };
      state.branches.set(entry.branch_id, branch);
    } else if (entry.branch_from_step !== undefined) {
      branch.from = entry.branch_from_step;
    }
    branch.steps.set(entry.step_number, step);
    return;
  }
  state.main.set(entry.step_number, step);
}

const byNumber = (a: PlanStep, b: PlanStep) => a.step_number - b.step_number;

function toPlan(state: PlanState): Plan {
  return {
    steps: [...state.main.values()].sort(byNumber),
    branches: [...state.branches.entries()].map(([branch_id, branch]) => ({
      branch_id,
      branch_from_step: branch.from,
      steps: [...branch.steps.values()].sort(byNumber),
    })),
    revisions: [...state.revisions.values()].sort((a, b) => a.step_number - b.step_number),
  };
}

/** The plan as text: main steps, then each branch, then the revision history. */
function renderPlan(plan: Plan): string {
  const line = (step: PlanStep, indent = "") =>
    `${indent}${step.step_number}. ${step.step}${step.revised_at_step !== undefined ? ` [revised at step ${step.revised_at_step}]` : ""}`;
  const parts = [
    `PLAN: ${plan.steps.length} main step${plan.steps.length === 1 ? "" : "s"}, ${plan.branches.length} branch${plan.branches.length === 1 ? "" : "es"}, ${plan.revisions.length} revision${plan.revisions.length === 1 ? "" : "s"}`,
    "",
    ...plan.steps.map((step) => line(step)),
  ];
  for (const branch of plan.branches) {
    parts.push(
      "",
      `Branch "${branch.branch_id}" (alternative after step ${branch.branch_from_step}):`,
      ...branch.steps.map((step) => line(step, "  ")),
    );
  }
  if (plan.revisions.length > 0) {
    parts.push(
      "",
      "Revisions:",
      ...plan.revisions.map(
        (revision) =>
          `  step ${revision.step_number} revised step ${revision.revises_step_number}${revision.branch_id !== undefined ? ` of branch "${revision.branch_id}"` : ""}: "${revision.previous}" → "${revision.replacement}"`,
      ),
    );
  }
  return parts.join("\n");
}

/** All step numbers present in the plan (main path and branches). */
function knownSteps(state: PlanState): number[] {
  const numbers = new Set(state.main.keys());
  for (const branch of state.branches.values()) for (const number of branch.steps.keys()) numbers.add(number);
  return [...numbers].sort((a, b) => a - b);
}

const listSteps = (numbers: number[]) => (numbers.length > 0 ? numbers.join(", ") : "none yet");

/**
 * Checks the revision and branch fields against the plan so far and returns the entry to store.
 * @throws ExaiError INVALID_ARGUMENT naming the offending field and what to send instead.
 */
function validate(args: PlannerArgs, state: PlanState): PlanEntry {
  if (args.step_number > args.total_steps) {
    throw invalidArgument(
      "step_number",
      `step_number (${args.step_number}) must be ≤ total_steps (${args.total_steps}); when the plan needs more steps, raise total_steps (and set more_steps_needed)`,
    );
  }
  const isRevision = args.is_step_revision === true || args.revises_step_number !== undefined;
  const isBranchPoint = args.is_branch_point === true || (args.branch_from_step !== undefined && !isRevision);
  const entry: PlanEntry = { step_number: args.step_number, total_steps: args.total_steps, step: args.step };
  if (isRevision && isBranchPoint) {
    throw invalidArgument(
      "is_branch_point",
      "a step is either a revision or a branch point, not both; send the revision and the branch as two steps",
    );
  }
  if (isRevision) {
    const target = args.revises_step_number;
    if (target === undefined) {
      throw invalidArgument(
        "revises_step_number",
        "required when is_step_revision is true: name the earlier step this one replaces",
      );
    }
    if (target >= args.step_number) {
      throw invalidArgument(
        "revises_step_number",
        `${target} is not an earlier step than step_number ${args.step_number}; a revision replaces an earlier step (to redo step ${args.step_number}, send it again without is_step_revision)`,
      );
    }
    const path = args.branch_id !== undefined ? state.branches.get(args.branch_id)?.steps : state.main;
    if (args.branch_id !== undefined && !path) {
      throw invalidArgument(
        "branch_id",
        `unknown branch ${JSON.stringify(args.branch_id)}; known branches: ${[...state.branches.keys()].join(", ") || "none"}`,
      );
    }
    if (!path?.has(target)) {
      throw invalidArgument(
        "revises_step_number",
        `step ${target} is not in the ${args.branch_id !== undefined ? `branch ${JSON.stringify(args.branch_id)}` : "main path"} of this plan (steps there: ${listSteps([...(path?.keys() ?? [])].sort((a, b) => a - b))}); pass the continuation_id of this plan and an existing step`,
      );
    }
    return {
      ...entry,
      revises_step_number: target,
      ...(args.branch_id ? { branch_id: args.branch_id } : {}),
    };
  }
  if (isBranchPoint) {
    if (args.branch_id === undefined) {
      throw invalidArgument(
        "branch_id",
        "required for a branch point: name the alternative path, e.g. use-redis",
      );
    }
    const from = args.branch_from_step;
    if (from === undefined) {
      throw invalidArgument(
        "branch_from_step",
        "required for a branch point: name the step after which the alternative path forks",
      );
    }
    const known = knownSteps(state);
    if (from >= args.step_number || !known.includes(from)) {
      throw invalidArgument(
        "branch_from_step",
        `step ${from} is not an earlier step of this plan (steps so far: ${listSteps(known)}); branch from an existing step`,
      );
    }
    return { ...entry, branch_id: args.branch_id, branch_from_step: from };
  }
  if (args.branch_id !== undefined) {
    if (!state.branches.has(args.branch_id)) {
      throw invalidArgument(
        "branch_id",
        `unknown branch ${JSON.stringify(args.branch_id)}; start it with is_branch_point true and branch_from_step, or omit branch_id to continue the main path`,
      );
    }
    return { ...entry, branch_id: args.branch_id };
  }
  return entry;
}

function requiredActions(args: PlannerArgs, plan: Plan): string[] {
  const step = args.step_number;
  const actions: string[] = [];
  // Big plans go wrong in their first steps: ask for reflection before detail.
  if (args.total_steps >= 5 && step <= 3)
    actions.push("Reflect before the next step: is the approach right, or is there a simpler one?");
  if (step === 1) {
    actions.push(
      "State the goal, the constraints and what done looks like",
      "List the major work streams or phases before detailing any of them",
    );
  } else if (step >= args.total_steps - 1) {
    actions.push(
      "Check that the plan covers every requirement, including tests, migration and rollout",
      "Name the risks and how each step will be verified",
    );
  } else {
    actions.push(
      "Break the next part into concrete, verifiable actions with their order and dependencies",
      "If an earlier step no longer holds, revise it (is_step_revision, revises_step_number)",
    );
  }
  if (plan.branches.length === 0 && step > 1)
    actions.push(
      "Where two approaches are both viable, explore one as a branch (is_branch_point, branch_from_step, branch_id)",
    );
  return actions;
}

export const plannerTool = defineTool({
  name: "planner",
  kind: "workflow",
  description:
    "Build a plan step by step (no model call): each call adds a step; revise earlier steps (is_step_revision) or explore alternatives as branches (is_branch_point, branch_id). The final step returns the whole plan.",
  annotations: { title: "Planner", readOnlyHint: true, openWorldHint: false },
  schema,
  async run(args, context) {
    const oversized = oversizedPrompt("step", args.step);
    if (oversized) return oversized;
    const thread = await loadThread(context.services, args.continuation_id);
    const entry = validate(args, replay(planEntries(thread)));
    const continuationId = await recordTurns(context.services, thread, "planner", [
      {
        role: "user",
        toolName: "planner",
        content: `Plan step ${args.step_number}/${args.total_steps}${entry.branch_id !== undefined ? ` (branch ${entry.branch_id})` : ""}${entry.revises_step_number !== undefined ? ` (revises step ${entry.revises_step_number})` : ""}: ${args.step}`,
        data: { planner: entry },
      },
    ]);
    const updated = await context.services.store.getThread(continuationId);
    const plan = toPlan(replay(planEntries(updated)));
    const common = {
      step_number: args.step_number,
      total_steps: args.total_steps,
      continuation_id: continuationId,
      planner_status: {
        main_steps: plan.steps.length,
        branches: plan.branches.map((branch) => branch.branch_id),
        revisions: plan.revisions.length,
      },
      plan,
    };
    const finished = !args.next_step_required && args.more_steps_needed !== true;
    if (!finished) {
      return {
        status: "pause_for_planning",
        ...common,
        next_step_required: true,
        required_actions: requiredActions(args, plan),
        next_steps: `Think through the next step, then call planner with step_number ${args.step_number + 1}, continuation_id ${continuationId}${args.more_steps_needed === true && args.step_number >= args.total_steps ? " and a raised total_steps (more_steps_needed is true)" : ""}. Set next_step_required false at the final step.`,
      };
    }
    return {
      status: "planning_complete",
      ...common,
      next_step_required: false,
      plan_summary: renderPlan(plan),
      next_steps:
        "Present the plan to the user: the main steps in order, each branch as an alternative with its trade-offs, and which steps were revised. Confirm the chosen path before implementing.",
    };
  },
});
