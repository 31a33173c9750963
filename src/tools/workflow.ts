/**
 * The workflow engine (SPEC §4.2). The calling agent investigates step by step; the server keeps
 * the steps in the conversation thread and, at the final step, asks an expert model once — with a
 * tool-specific system prompt, the consolidated steps and the line-numbered relevant files — inside
 * EXPERT_ANALYSIS_TIMEOUT_SECS. Never more than one model call per invocation (the Python original
 * auto-executed steps recursively and made up to 50 calls).
 */
import { z } from "zod";
import { invalidArgument } from "../base/errors.js";
import type { Thread } from "../store/store.js";
import { loadThread, oversizedPrompt, pickModel, recordTurns, usageJson } from "./common.js";
import { defineTool, type Services, type ToolContext, type ToolDefinition } from "./framework.js";
import { askExpert, parseExpertReply } from "./workflow-expert.js";
import {
  BASE_KEYS,
  consolidateSteps,
  MODEL_FIELDS,
  unique,
  workflowBaseShape,
  type PreparedStep,
  type StepRecord,
  type WorkflowBase,
  type WorkflowSpec,
} from "./workflow-spec.js";

type WorkflowArgs = WorkflowBase & Record<string, unknown>;

/** Whether this call will ask the expert (decides model selection before admission). */
function needsExpert(spec: WorkflowSpec, args: WorkflowBase, services: Services): boolean {
  return (
    spec.usesExpert !== false &&
    !args.next_step_required &&
    args.use_assistant_model !== false &&
    services.config.expertAnalysisEnabled &&
    args.confidence !== "certain"
  );
}

/** One step as recorded: the thread after it, the consolidated steps, and the fields every answer carries. */
interface RecordedStep {
  updated: Thread | undefined;
  steps: StepRecord[];
  prepared: PreparedStep;
  common: Record<string, unknown>;
}

/**
 * Validates the step's paths and tool-specific fields, records the step in the thread and
 * consolidates the steps so far.
 * @throws ExaiError INVALID_ARGUMENT (step_number, paths, the tool's own fields): nothing is recorded.
 */
async function recordStep(
  spec: WorkflowSpec,
  args: WorkflowArgs,
  context: ToolContext,
): Promise<RecordedStep> {
  // Validate every path now so a bad one fails this step, not the expert call later.
  const relevantFiles = args.relevant_files?.length
    ? await context.files.expand(args.relevant_files, "relevant_files", context.signal)
    : [];
  const filesChecked = args.files_checked?.length
    ? await context.files.expand(args.files_checked, "files_checked", context.signal)
    : [];
  const thread = await loadThread(context.services, args.continuation_id);
  const prepared = (await spec.prepareStep?.(args, context, consolidateSteps(thread, spec.name))) ?? {};
  const extras = Object.fromEntries(Object.entries(args).filter(([key]) => !BASE_KEYS.has(key)));
  const record: StepRecord = {
    step_number: args.step_number,
    total_steps: args.total_steps,
    step: args.step,
    findings: args.findings,
    files_checked: filesChecked,
    relevant_files: relevantFiles,
    relevant_context: args.relevant_context ?? [],
    issues_found: args.issues_found ?? [],
    ...(args.confidence ? { confidence: args.confidence } : {}),
    ...(args.hypothesis ? { hypothesis: args.hypothesis } : {}),
    extras,
  };
  const continuationId = await recordTurns(context.services, thread, spec.name, [
    {
      role: "user",
      toolName: spec.name,
      content: `Step ${args.step_number}/${args.total_steps}: ${args.step}\nFindings: ${args.findings}`,
      files: relevantFiles,
      data: {
        step_number: args.step_number,
        record,
        ...(args.backtrack_from_step ? { backtrack_from_step: args.backtrack_from_step } : {}),
      },
    },
  ]);
  const updated = await context.services.store.getThread(continuationId);
  const steps = consolidateSteps(updated, spec.name);
  const statusCounts = {
    files_checked: unique(steps.map((s) => s.files_checked)).length,
    relevant_files: unique(steps.map((s) => s.relevant_files)).length,
    relevant_context: unique(steps.map((s) => s.relevant_context)).length,
    issues_found: steps.reduce((sum, s) => sum + s.issues_found.length, 0),
    current_confidence: args.confidence ?? "exploring",
  };
  const common = {
    step_number: args.step_number,
    total_steps: args.total_steps,
    continuation_id: continuationId,
    [`${spec.name}_status`]: statusCounts,
    ...prepared.result,
  };
  return { updated, steps, prepared, common };
}

/** The final step's summary of the whole investigation. */
function summarise(steps: StepRecord[], args: WorkflowArgs) {
  return {
    steps_taken: steps.length,
    initial_request: steps[0]?.step ?? args.step,
    files_checked: unique(steps.map((s) => s.files_checked)),
    relevant_files: unique(steps.map((s) => s.relevant_files)),
    relevant_context: unique(steps.map((s) => s.relevant_context)),
    issues_found: steps.flatMap((s) => s.issues_found),
    final_confidence: args.confidence ?? "exploring",
    ...(args.hypothesis ? { hypothesis: args.hypothesis } : {}),
  };
}

/** The final step without an expert: why it was skipped, and the summary. */
function completeLocally(
  spec: WorkflowSpec,
  args: WorkflowArgs,
  common: Record<string, unknown>,
  summary: ReturnType<typeof summarise>,
): Record<string, unknown> {
  const reason =
    args.confidence === "certain"
      ? "confidence is certain"
      : args.use_assistant_model === false
        ? "use_assistant_model is false"
        : "EXPERT_ANALYSIS_ENABLED is false";
  return {
    status: args.confidence === "certain" ? `${spec.name}_complete` : "local_work_complete",
    ...common,
    [`${spec.name}_complete`]: true,
    skip_expert_analysis: true,
    skip_reason: reason,
    [`complete_${spec.name}`]: summary,
    next_steps: `The ${spec.name} is complete without expert analysis (${reason}). Present the findings and issues to the user.`,
  };
}

/** The final step with the expert: one model call, its reply recorded in the thread and parsed. */
async function completeWithExpert(
  spec: WorkflowSpec,
  args: WorkflowArgs,
  context: ToolContext,
  step: RecordedStep,
  summary: ReturnType<typeof summarise>,
): Promise<Record<string, unknown>> {
  const model = context.model ?? pickModel(context.services, args.model, args.findings);
  context.progress(`calling_expert_analysis with ${model.model.id}`);
  const expert = await askExpert(
    spec,
    step.steps,
    summary,
    args,
    context,
    model,
    step.prepared.promptLines ?? [],
  );
  const analysis = parseExpertReply(expert.content);
  await recordTurns(context.services, step.updated, spec.name, [
    {
      role: "assistant",
      toolName: spec.name,
      content: expert.content,
      model: expert.model,
      provider: expert.provider,
    },
  ]);
  const filesRequired = analysis.status === "files_required_to_continue";
  return {
    status: filesRequired ? "files_required_to_continue" : "calling_expert_analysis",
    ...step.common,
    [`${spec.name}_complete`]: !filesRequired,
    expert_analysis: analysis,
    ...(filesRequired
      ? { files_needed: analysis.files_needed ?? analysis.mandatory_instructions ?? null }
      : {}),
    [`complete_${spec.name}`]: summary,
    next_steps: filesRequired
      ? `The expert needs more files: read them and call ${spec.name} again with them in relevant_files.`
      : `Review the expert analysis critically against your own findings, then present the combined result to the user.`,
    usage: usageJson(expert),
    metadata: {
      model_used: expert.model,
      provider_used: expert.provider,
      attempts: expert.attempts.length,
    },
  };
}

/** Builds a workflow tool from its spec. */
export function createWorkflowTool(spec: WorkflowSpec): ToolDefinition {
  // Tools that never call a model do not list the model fields (they cost every client context
  // tokens); unknown keys are ignored by the schema, so an agent sending them anyway is not refused.
  const baseShape =
    spec.usesExpert === false
      ? Object.fromEntries(Object.entries(workflowBaseShape).filter(([key]) => !MODEL_FIELDS.has(key)))
      : workflowBaseShape;
  const schema = z.object({ ...baseShape, ...(spec.extraShape ?? {}) });
  return defineTool({
    name: spec.name,
    kind: "workflow",
    description: spec.description,
    annotations: { title: spec.title, readOnlyHint: true, openWorldHint: spec.usesExpert !== false },
    schema,
    selectModel(args, services) {
      const base = args as unknown as WorkflowBase;
      return needsExpert(spec, base, services)
        ? pickModel(services, base.model, base.findings, base.step)
        : undefined;
    },
    async run(rawArgs, context) {
      const args = rawArgs as unknown as WorkflowArgs;
      if (args.step_number > args.total_steps) {
        throw invalidArgument(
          "step_number",
          `step_number (${args.step_number}) must be ≤ total_steps (${args.total_steps}); raise total_steps if the investigation needs more steps`,
        );
      }
      const oversized = oversizedPrompt("step", args.step) ?? oversizedPrompt("findings", args.findings);
      if (oversized) return oversized;
      const step = await recordStep(spec, args, context);
      if (args.next_step_required) {
        const continuationId = step.common.continuation_id as string;
        return {
          status: `pause_for_${spec.pauseNoun}`,
          ...step.common,
          next_step_required: true,
          required_actions: spec.requiredActions(args.step_number, args.total_steps, args),
          next_steps: `Do the required actions, then call ${spec.name} again with step_number ${args.step_number + 1}, continuation_id ${continuationId} and your new findings. Do not call ${spec.name} again until you have investigated.`,
        };
      }
      const summary = summarise(step.steps, args);
      if (spec.complete) {
        return {
          ...step.common,
          ...(await spec.complete(step.steps, args, context)),
          [`complete_${spec.name}`]: summary,
        };
      }
      if (!needsExpert(spec, args, context.services))
        return completeLocally(spec, args, step.common, summary);
      return completeWithExpert(spec, args, context, step, summary);
    },
  });
}
