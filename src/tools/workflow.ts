/**
 * The workflow engine (SPEC §4.2). The calling agent investigates step by step; the server keeps
 * the steps in the conversation thread and, at the final step, asks an expert model once — with a
 * tool-specific system prompt, the consolidated steps and the line-numbered relevant files — inside
 * EXPERT_ANALYSIS_TIMEOUT_SECS. Never more than one model call per invocation (the Python original
 * auto-executed steps recursively and made up to 50 calls).
 */
import { z } from "zod";
import { invalidArgument } from "../base/errors.js";
import type { ChatResult } from "../providers/openai-compatible.js";
import type { ResolvedModel } from "../providers/registry.js";
import type { Thread, Turn } from "../store/store.js";
import {
  continuationField,
  defaultTemperature,
  imageParts,
  imagesField,
  loadThread,
  modelField,
  oversizedPrompt,
  pickModel,
  recordTurns,
  temperatureField,
  thinkingModeField,
  usageJson,
  userMessage,
  webSearchField,
} from "./common.js";
import { planBudget } from "../memory/conversation.js";
import { defineTool, type Services, type ToolContext, type ToolDefinition } from "./framework.js";

export const CONFIDENCE_LEVELS = [
  "exploring",
  "low",
  "medium",
  "high",
  "very_high",
  "almost_certain",
  "certain",
] as const;
export type Confidence = (typeof CONFIDENCE_LEVELS)[number];
export const SEVERITIES = ["critical", "high", "medium", "low", "info"] as const;

const issueSchema = z.object({
  severity: z.enum(SEVERITIES),
  description: z.string().min(1),
  location: z.string().optional(),
});

const MAX_FINDINGS = 50_000;

/** The fields every workflow tool accepts (SPEC §4.2). */
export const workflowBaseShape = {
  step: z.string().trim().min(1, "must not be blank").describe("What you investigate in this step"),
  step_number: z.number().int().min(1).describe("Current step, from 1"),
  total_steps: z.number().int().min(1).describe("Estimated total steps"),
  next_step_required: z.boolean().describe("true if another step follows; false at the final step"),
  findings: z
    .string()
    .trim()
    .min(1, "must not be blank")
    .max(MAX_FINDINGS)
    .describe("What you found in this step"),
  files_checked: z.array(z.string()).optional().describe("Absolute paths examined"),
  relevant_files: z.array(z.string()).optional().describe("Absolute paths that matter (sent to the expert)"),
  relevant_context: z.array(z.string()).optional().describe("Functions/methods involved"),
  issues_found: z.array(issueSchema).optional().describe("Issues: {severity, description}"),
  confidence: z.enum(CONFIDENCE_LEVELS).optional(),
  hypothesis: z.string().optional(),
  backtrack_from_step: z.number().int().min(1).optional().describe("Discard steps from this number on"),
  images: imagesField,
  continuation_id: continuationField,
  model: modelField,
  temperature: temperatureField,
  thinking_mode: thinkingModeField,
  use_websearch: webSearchField,
  use_assistant_model: z
    .boolean()
    .optional()
    .describe("Ask the expert model at the final step (default true)"),
};

type WorkflowBase = z.infer<z.ZodObject<typeof workflowBaseShape>>;

export interface WorkflowSpec {
  name: string;
  description: string;
  title: string;
  /** pause_for_<noun> at intermediate steps. */
  pauseNoun: string;
  /** Tool-specific fields (SPEC §4.2). */
  extraShape?: z.ZodRawShape;
  /** The expert's system prompt. */
  systemPrompt: string;
  /** What the agent must do before the next step. */
  requiredActions(stepNumber: number, totalSteps: number, args: Record<string, unknown>): string[];
  /** Extra lines for the expert prompt from tool-specific fields. */
  describeExtras?(args: Record<string, unknown>): string[];
  /**
   * Runs at every step before the step is recorded: validates tool-specific arguments (throw
   * ExaiError INVALID_ARGUMENT and nothing is recorded) and gathers what the tool needs from outside
   * the request (precommit: the git diff). `previous` holds the steps recorded so far in the thread,
   * so a later step can reuse a field given at step 1.
   */
  prepareStep?(
    args: Record<string, unknown>,
    context: ToolContext,
    previous: StepRecord[],
  ): Promise<PreparedStep> | PreparedStep;
  /** false for planner/docgen/tracer-style tools: never call a model. */
  usesExpert?: boolean;
  /** Custom completion for tools without an expert (planner…); receives the consolidated steps. */
  complete?(
    steps: StepRecord[],
    args: Record<string, unknown>,
    context: ToolContext,
  ): Promise<Record<string, unknown>> | Record<string, unknown>;
}

/** What `WorkflowSpec.prepareStep` contributes to a step. */
export interface PreparedStep {
  /** Fields merged into the step's response (e.g. the changed files). */
  result?: Record<string, unknown>;
  /** Lines appended to the expert prompt at the final step (e.g. the diff). */
  promptLines?: string[];
}

export interface StepRecord {
  step_number: number;
  total_steps: number;
  step: string;
  findings: string;
  files_checked: string[];
  relevant_files: string[];
  relevant_context: string[];
  issues_found: Array<{ severity: string; description: string; location?: string }>;
  confidence?: string;
  hypothesis?: string;
  extras: Record<string, unknown>;
}

const BASE_KEYS = new Set(Object.keys(workflowBaseShape));
const MODEL_FIELDS = new Set([
  "images",
  "model",
  "temperature",
  "thinking_mode",
  "use_websearch",
  "use_assistant_model",
]);

/** The steps of `tool` recorded in the thread, latest record per step number, backtracks applied. */
export function consolidateSteps(thread: Thread | undefined, tool: string): StepRecord[] {
  const steps = new Map<number, StepRecord>();
  for (const turn of thread?.turns ?? []) {
    const data = stepData(turn, tool);
    if (!data) continue;
    if (data.backtrack !== undefined)
      for (const number of [...steps.keys()]) if (number >= data.backtrack) steps.delete(number);
    steps.set(data.record.step_number, data.record);
  }
  return [...steps.values()].sort((a, b) => a.step_number - b.step_number);
}

function stepData(turn: Turn, tool: string): { record: StepRecord; backtrack?: number } | undefined {
  if (
    turn.toolName !== tool ||
    turn.role !== "user" ||
    !turn.data ||
    typeof turn.data.step_number !== "number"
  )
    return undefined;
  const data = turn.data as Record<string, unknown>;
  return {
    record: data.record as StepRecord,
    ...(typeof data.backtrack_from_step === "number" ? { backtrack: data.backtrack_from_step } : {}),
  };
}

const unique = (lists: string[][]) => [...new Set(lists.flat())];

/**
 * A tool-specific field's value for this step: the value given now, else the one given at the
 * latest earlier step (agents set fields like `path` or `audit_focus` once, at step 1).
 */
export function latestExtra(name: string, args: Record<string, unknown>, previous: StepRecord[]): unknown {
  if (args[name] !== undefined) return args[name];
  for (let index = previous.length - 1; index >= 0; index--) {
    const value = previous[index]?.extras[name];
    if (value !== undefined) return value;
  }
  return undefined;
}

/** Parses an expert reply: JSON (bare or fenced) when the model sent it, else {raw_analysis}. */
export function parseExpertReply(content: string): Record<string, unknown> {
  const trimmed = content.trim();
  const candidates = [trimmed, /```(?:json)?\s*([\s\S]*?)```/i.exec(trimmed)?.[1]?.trim()];
  const braces = trimmed.indexOf("{");
  if (braces >= 0) candidates.push(trimmed.slice(braces, trimmed.lastIndexOf("}") + 1));
  for (const candidate of candidates) {
    if (!candidate) continue;
    try {
      const parsed: unknown = JSON.parse(candidate);
      if (parsed && typeof parsed === "object" && !Array.isArray(parsed))
        return parsed as Record<string, unknown>;
    } catch {
      // not JSON in this form; try the next candidate
    }
  }
  return { raw_analysis: content };
}

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
      const args = rawArgs as unknown as WorkflowBase & Record<string, unknown>;
      if (args.step_number > args.total_steps) {
        throw invalidArgument(
          "step_number",
          `step_number (${args.step_number}) must be ≤ total_steps (${args.total_steps}); raise total_steps if the investigation needs more steps`,
        );
      }
      const oversized = oversizedPrompt("step", args.step) ?? oversizedPrompt("findings", args.findings);
      if (oversized) return oversized;
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

      if (args.next_step_required) {
        return {
          status: `pause_for_${spec.pauseNoun}`,
          ...common,
          next_step_required: true,
          required_actions: spec.requiredActions(args.step_number, args.total_steps, args),
          next_steps: `Do the required actions, then call ${spec.name} again with step_number ${args.step_number + 1}, continuation_id ${continuationId} and your new findings. Do not call ${spec.name} again until you have investigated.`,
        };
      }

      const summary = {
        steps_taken: steps.length,
        initial_request: steps[0]?.step ?? args.step,
        files_checked: unique(steps.map((s) => s.files_checked)),
        relevant_files: unique(steps.map((s) => s.relevant_files)),
        relevant_context: unique(steps.map((s) => s.relevant_context)),
        issues_found: steps.flatMap((s) => s.issues_found),
        final_confidence: args.confidence ?? "exploring",
        ...(args.hypothesis ? { hypothesis: args.hypothesis } : {}),
      };
      if (spec.complete) {
        return {
          ...common,
          ...(await spec.complete(steps, args, context)),
          [`complete_${spec.name}`]: summary,
        };
      }
      if (!needsExpert(spec, args, context.services)) {
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

      const model = context.model ?? pickModel(context.services, args.model, args.findings);
      context.progress(`calling_expert_analysis with ${model.model.id}`);
      const expert = await askExpert(spec, steps, summary, args, context, model, prepared.promptLines ?? []);
      const analysis = parseExpertReply(expert.content);
      await recordTurns(context.services, updated, spec.name, [
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
        ...common,
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
    },
  });
}

async function askExpert(
  spec: WorkflowSpec,
  steps: StepRecord[],
  summary: { relevant_files: string[]; issues_found: StepRecord["issues_found"] },
  args: WorkflowBase & Record<string, unknown>,
  context: ToolContext,
  model: ResolvedModel,
  preparedLines: string[],
): Promise<ChatResult> {
  const { services, config } = { services: context.services, config: context.services.config };
  const budget = planBudget(model.model.contextWindow);
  const lines: string[] = [
    `=== ${spec.name.toUpperCase()} REQUEST ===`,
    steps[0]?.step ?? args.step,
    "",
    "=== INVESTIGATION STEPS (by the calling agent) ===",
  ];
  for (const step of steps) {
    lines.push(
      `--- Step ${step.step_number}/${step.total_steps}${step.confidence ? ` (confidence: ${step.confidence})` : ""} ---`,
      step.step,
      `Findings: ${step.findings}`,
    );
    if (step.hypothesis) lines.push(`Hypothesis: ${step.hypothesis}`);
    if (step.relevant_context.length) lines.push(`Relevant context: ${step.relevant_context.join(", ")}`);
  }
  if (summary.issues_found.length > 0) {
    lines.push(
      "",
      "=== ISSUES FOUND SO FAR ===",
      ...summary.issues_found.map(
        (issue) =>
          `- [${issue.severity}] ${issue.description}${issue.location ? ` (${issue.location})` : ""}`,
      ),
    );
  }
  // Tool-specific fields are usually given once (step 1): the latest value of each holds.
  const extras = Object.assign({}, ...steps.map((step) => step.extras), args) as typeof args;
  lines.push(...(spec.describeExtras?.(extras) ?? []), ...preparedLines);
  // The steps themselves (up to 50,000 characters of findings each) share the content budget with
  // the files: count them first, and give the files what is left.
  const stepTokens = services.tokens.count(lines.join("\n"));
  const embedded =
    summary.relevant_files.length > 0
      ? await context.files.embed(summary.relevant_files, {
          tokenBudget: Math.max(
            0,
            budget.files + budget.history - Math.max(0, stepTokens - budget.content * 0.2),
          ),
          countTokens: (text) => services.tokens.count(text),
          signal: context.signal,
        })
      : { text: "", included: [], skipped: [], tokens: 0 };
  if (embedded.text) lines.push("", "=== RELEVANT FILES ===", embedded.text);
  if (embedded.skipped.length > 0)
    lines.push(
      "",
      "=== FILES NOT INCLUDED ===",
      ...embedded.skipped.map((item) => `${item.path}: ${item.reason}`),
    );
  lines.push(
    "",
    'Respond with a single JSON object (no prose around it). If you cannot answer without more files, respond {"status": "files_required_to_continue", "files_needed": [absolute paths], "mandatory_instructions": "..."}.',
  );
  const images = await imageParts(context, model, args.images);
  // Leave a little of the tool budget for recording the result after the expert call.
  const expertBudget = Math.min(config.timeouts.expertAnalysisMs, Math.max(0, context.remainingMs() - 250));
  return context.callModel({
    model,
    messages: [{ role: "system", content: spec.systemPrompt }, userMessage(lines.join("\n"), images)],
    temperature: defaultTemperature(model, args.temperature),
    thinkingMode: args.thinking_mode ?? "medium",
    webSearch: args.use_websearch ?? false,
    budgetMs: expertBudget,
    layer: "expert",
  });
}
