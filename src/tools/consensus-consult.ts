/**
 * The consensus tool's consultation of one model: stances and their prompts, model resolution,
 * the per-model context and deadline, and the verdict summary (see consensus.ts).
 */
import { z } from "zod";
import { invalidArgument, toExaiError } from "../base/errors.js";
import { buildConversationContext, planBudget } from "../memory/conversation.js";
import { now } from "../timing/deadline.js";
import type { ThinkingMode } from "../providers/types.js";
import type { ResolvedModel } from "../providers/registry.js";
import type { Thread } from "../store/store.js";
import { defaultTemperature, imageParts, usageJson, userMessage } from "./common.js";
import { type Services, type ToolContext } from "./framework.js";

const STANCES = ["for", "against", "neutral"] as const;
type Stance = (typeof STANCES)[number];

/** Most models one consensus call consults. */
export const MAX_CONSENSUS_MODELS = 8;
/** Time kept back from the per-model deadlines to record the verdicts and answer, ms. */
const ANSWER_MARGIN_MS = 250;

const CONSENSUS_PROMPT = `You are one of several expert advisers an AI coding agent consults independently about a proposal or question. You do
not see the other advisers' answers, and they do not see yours. Evaluate: technical feasibility; fit with the project, its
constraints and existing code; value to users; implementation complexity and risk; better alternatives; long-term
maintenance; and established industry practice. Be concrete; cite file:line when files are given. Stay truthful: never
misstate a fact to fit your stance.

Answer in this format:
## Verdict
One or two sentences: your overall position.
## Analysis
Your reasoning, strongest points first.
## Confidence
A score from 1 to 10, and what would change your mind.
## Key takeaways
Three to five points the agent must weigh.`;

/** Stance instructions; each model sees only its own. Exported so tests can check the blinding. */
export const STANCE_PROMPTS: Record<Stance, string> = {
  for: `YOUR STANCE: SUPPORTIVE ADVOCATE. Make the strongest honest case for the proposal: its benefits, how to make it succeed,
and how to mitigate its risks. Advocacy has limits: if the proposal is technically unsound, unsafe, or clearly worse than an
obvious alternative, say so plainly; a good advocate does not endorse a bad idea.`,
  against: `YOUR STANCE: CRITICAL REVIEWER. Probe the proposal for weaknesses: hidden costs, failure modes, risks, simpler or
better alternatives, and reasons not to do it now. Criticism has limits: where the proposal is genuinely sound, acknowledge
it; do not invent problems.`,
  neutral: `YOUR STANCE: IMPARTIAL ASSESSOR. Weigh benefits and drawbacks evenly and let the evidence decide; state the
conditions under which the proposal is the right call and when it is not.`,
};

export const modelEntry = z.object({
  model: z.string().trim().min(1).describe("Model name or alias (see listmodels)"),
  stance: z.enum(STANCES).optional().describe("for | against | neutral (default neutral)"),
  stance_prompt: z
    .string()
    .trim()
    .min(1)
    .max(4000)
    .optional()
    .describe("Custom stance instructions, replacing the default for this stance"),
});
export type ModelEntry = z.infer<typeof modelEntry>;

/** One model's answer, or why it has none. */
export type VerdictEntry =
  | {
      model: string;
      provider: string;
      stance: Stance;
      status: "success";
      verdict: string;
      usage: Record<string, number>;
      duration_ms: number;
      model_note?: string;
    }
  | {
      model: string;
      stance: Stance;
      status: "error";
      code: string;
      message: string;
      duration_ms: number;
      retry_after?: number;
    };

/** A model entry with its resolution (or the reason it could not be resolved). */
interface Candidate {
  entry: ModelEntry;
  stance: Stance;
  resolved?: ResolvedModel;
  failure?: { code: string; message: string };
}

/** What the first turn of a consensus round stores, so later sequential steps can go on. */
export interface RoundData {
  mode: "parallel" | "sequential";
  prompt: string;
  models: ModelEntry[];
  files: string[];
  /** Index of the round's first turn: earlier turns are the conversation it continues. */
  round_start: number;
}

/**
 * Resolves every entry through the registry; an unknown model becomes a failed candidate, not an
 * error of the whole call.
 * @throws ExaiError INVALID_ARGUMENT naming `models[i]` when an entry repeats an earlier model and stance.
 */
export function resolveCandidates(entries: ModelEntry[], services: Services): Candidate[] {
  const seen = new Map<string, number>();
  return entries.map((entry, index) => {
    const stance = entry.stance ?? "neutral";
    let candidate: Candidate;
    try {
      candidate = { entry, stance, resolved: services.registry.resolve(entry.model) };
    } catch (error) {
      const failure = toExaiError(error, "consensus");
      candidate = { entry, stance, failure: { code: failure.code, message: failure.message } };
    }
    // Aliases count as their model: "flash" and "glm-4.5-flash" with one stance are duplicates.
    const key = `${(candidate.resolved?.model.id ?? entry.model).toLowerCase()}|${stance}`;
    const first = seen.get(key);
    if (first !== undefined) {
      throw invalidArgument(
        `models[${index}]`,
        `${JSON.stringify(entry.model)} with stance ${stance} repeats models[${first}] (${JSON.stringify(entries[first]?.model)}, ${stance}); give each model a different stance or drop the duplicate`,
        { value: entry },
      );
    }
    seen.set(key, index);
    return candidate;
  });
}

/** The conversation before this round and the files, as text for one model's budget. */
async function contextFor(
  context: ToolContext,
  model: ResolvedModel,
  prior: Thread | undefined,
  files: string[],
): Promise<string> {
  const { services } = context;
  const budget = planBudget(model.model.contextWindow);
  const parts: string[] = [];
  if (prior && prior.turns.length > 0) {
    const history = buildConversationContext(prior, {
      historyTokenBudget: budget.history,
      counter: services.tokens,
      excludeFiles: files,
    });
    if (history.historyText) parts.push(history.historyText);
  }
  if (files.length > 0) {
    const embedded = await context.files.embed(files, {
      tokenBudget: budget.files,
      countTokens: (text) => services.tokens.count(text),
      signal: context.signal,
    });
    if (embedded.text) parts.push(`=== FILES ===\n${embedded.text}`);
    if (embedded.skipped.length > 0)
      parts.push(
        `=== FILES NOT INCLUDED ===\n${embedded.skipped.map((item) => `${item.path}: ${item.reason}`).join("\n")}`,
      );
  }
  return parts.join("\n\n");
}

/** How one model is consulted: the shared prompt, conversation, files and its own deadline. */
interface ConsultOptions {
  prompt: string;
  prior: Thread | undefined;
  files: string[];
  images: string[] | undefined;
  /** Absolute deadline of this model's call, ms on the monotonic clock. */
  deadlineAt: number;
  temperature: number | undefined;
  thinkingMode: ThinkingMode | undefined;
}

/** Consults one model with its own stance only; never throws (a failure becomes an error entry). */
export async function consult(
  context: ToolContext,
  candidate: Candidate,
  options: ConsultOptions,
): Promise<VerdictEntry> {
  const started = now();
  const { entry, stance, resolved } = candidate;
  const elapsed = () => Math.round(now() - started);
  if (!resolved) {
    return {
      model: entry.model,
      stance,
      status: "error",
      code: candidate.failure?.code ?? "MODEL_NOT_FOUND",
      message: candidate.failure?.message ?? `model ${entry.model} could not be resolved`,
      duration_ms: 0,
    };
  }
  try {
    const images = await imageParts(context, resolved, options.images);
    const contextText = await contextFor(context, resolved, options.prior, options.files);
    const stanceText = entry.stance_prompt
      ? `YOUR STANCE (set by the agent): ${entry.stance_prompt}`
      : STANCE_PROMPTS[stance];
    const request = `${contextText ? `${contextText}\n\n` : ""}=== PROPOSAL / QUESTION ===\n${options.prompt}`;
    const result = await context.callModel({
      model: resolved,
      messages: [
        { role: "system", content: `${CONSENSUS_PROMPT}\n\n${stanceText}` },
        userMessage(request, images),
      ],
      temperature: defaultTemperature(resolved, options.temperature),
      thinkingMode: options.thinkingMode ?? "medium",
      webSearch: false,
      budgetMs: Math.max(0, options.deadlineAt - now()),
      layer: "expert",
    });
    return {
      model: result.model,
      provider: result.provider,
      stance,
      status: "success",
      verdict: result.content,
      usage: usageJson(result),
      duration_ms: elapsed(),
      ...(resolved.note ? { model_note: resolved.note } : {}),
    };
  } catch (error) {
    const failure = toExaiError(error, `consensus (${resolved.model.id})`);
    return {
      model: resolved.model.id,
      stance,
      status: "error",
      code: failure.code,
      message: failure.message,
      duration_ms: elapsed(),
      ...(failure.retryAfterS !== undefined ? { retry_after: failure.retryAfterS } : {}),
    };
  }
}

/**
 * The absolute deadline for the model calls: what is left of the call minus a margin for
 * recording and answering, and no more than an expert analysis may take.
 */
export function modelDeadline(context: ToolContext): number {
  const remaining = context.remainingMs();
  const margin = Math.min(ANSWER_MARGIN_MS, remaining / 4);
  return now() + Math.max(0, Math.min(context.services.config.timeouts.expertAnalysisMs, remaining - margin));
}

export function formatVerdicts(verdicts: VerdictEntry[]): string {
  return verdicts
    .map((verdict) =>
      verdict.status === "success"
        ? `### ${verdict.model} (stance: ${verdict.stance})\n${verdict.verdict}`
        : `### ${verdict.model} (stance: ${verdict.stance}) failed: ${verdict.code}: ${verdict.message}`,
    )
    .join("\n\n");
}

function overallStatus(verdicts: VerdictEntry[]): string {
  const succeeded = verdicts.filter((verdict) => verdict.status === "success").length;
  if (succeeded === 0) return "consensus_failed";
  return succeeded === verdicts.length ? "consensus_complete" : "consensus_partial";
}

export function finalFields(verdicts: VerdictEntry[]): Record<string, unknown> {
  const succeeded = verdicts.filter((verdict) => verdict.status === "success");
  const failed = verdicts.length - succeeded.length;
  return {
    status: overallStatus(verdicts),
    consulted: verdicts.length,
    succeeded: succeeded.length,
    failed,
    verdicts,
    next_steps:
      succeeded.length === 0
        ? "No model answered; each entry gives the code and message. Fix the cause (TIMEOUT: choose faster models or raise WORKFLOW_TOOL_TIMEOUT_SECS / EXPERT_ANALYSIS_TIMEOUT_SECS; MODEL_NOT_FOUND: see listmodels; NO_PROVIDER: configure the provider) and call consensus again."
        : `Synthesise the ${succeeded.length} verdict${succeeded.length === 1 ? "" : "s"} for the user; do not just list them. Say where the models agree and where and why they disagree, reading each through its stance (praise from a 'for' model and criticism from an 'against' model are expected; agreement across stances is strong evidence). ${failed > 0 ? `Mention that ${failed} model${failed === 1 ? "" : "s"} did not answer and so did not contribute. ` : ""}End with your own recommendation and concrete next actions.`,
    metadata: {
      // Several models answer one call: the usual single-model keys hold the list, comma-separated.
      model_used: succeeded.map((verdict) => verdict.model).join(", "),
      provider_used: [...new Set(succeeded.map((verdict) => verdict.provider))].join(", "),
      models_used: succeeded.map((verdict) => verdict.model),
    },
  };
}
