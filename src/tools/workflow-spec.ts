/**
 * What a workflow tool is made of (SPEC §4.2): the fields every workflow tool accepts, the spec a
 * tool provides, and the steps recorded in its conversation thread.
 */
import { z } from "zod";
import type { Thread, Turn } from "../store/store.js";
import {
  continuationField,
  imagesField,
  modelField,
  temperatureField,
  thinkingModeField,
  webSearchField,
} from "./common.js";
import { type ToolContext } from "./framework.js";

const CONFIDENCE_LEVELS = [
  "exploring",
  "low",
  "medium",
  "high",
  "very_high",
  "almost_certain",
  "certain",
] as const;
export type Confidence = (typeof CONFIDENCE_LEVELS)[number];
const SEVERITIES = ["critical", "high", "medium", "low", "info"] as const;

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

export type WorkflowBase = z.infer<z.ZodObject<typeof workflowBaseShape>>;

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

/** The base field names: every other argument is a tool-specific extra. */
export const BASE_KEYS = new Set(Object.keys(workflowBaseShape));
/** Base fields that only matter to a tool that calls a model. */
export const MODEL_FIELDS = new Set([
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

/** The distinct strings of several lists, in first-seen order. */
export const unique = (lists: string[][]) => [...new Set(lists.flat())];

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
