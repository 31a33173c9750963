/**
 * consensus — asks several models for their verdict on one proposal, each with a stance
 * (for / against / neutral) and each blinded to the others' answers (SPEC §4.1).
 *
 * - `parallel` (default, our edge over the anchors, which consult one model per step): every
 *   model is consulted at once in one call, each under its own deadline (what is left of the call
 *   minus a margin, capped at EXPERT_ANALYSIS_TIMEOUT_SECS), so the result always comes back before
 *   the tool deadline: a model that fails or times out becomes an error entry and the others'
 *   verdicts are kept.
 * - `sequential` (the anchors' behaviour): step_number i consults models[i-1] only and records its
 *   verdict in the thread; the last step returns every verdict.
 *
 * Statuses: `consensus_complete` (every model answered), `consensus_partial` (some failed),
 * `consensus_failed` (none answered: the entries say why), `pause_for_consensus` (a sequential
 * step before the last).
 */
import { z } from "zod";
import { invalidArgument, toExaiError } from "../base/errors.js";
import { buildConversationContext, planBudget } from "../memory/conversation.js";
import { now } from "../timing/deadline.js";
import type { ResolvedModel } from "../providers/registry.js";
import type { Thread } from "../store/store.js";
import {
  continuationField,
  defaultTemperature,
  filesField,
  imageParts,
  imagesField,
  loadThread,
  oversizedPrompt,
  recordTurns,
  temperatureField,
  thinkingModeField,
  usageJson,
  userMessage,
} from "./common.js";
import { defineTool, type Services, type ToolContext } from "./framework.js";

export const STANCES = ["for", "against", "neutral"] as const;
export type Stance = (typeof STANCES)[number];

/** Most models one consensus call consults. */
export const MAX_CONSENSUS_MODELS = 8;
/** Time kept back from the per-model deadlines to record the verdicts and answer, ms. */
const ANSWER_MARGIN_MS = 250;

export const CONSENSUS_PROMPT = `You are one of several expert advisers an AI coding agent consults independently about a proposal or question. You do
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

const modelEntry = z.object({
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
type ModelEntry = z.infer<typeof modelEntry>;

const schema = z.object({
  prompt: z
    .string()
    .optional()
    .describe("The proposal or question (required; in sequential mode given at step 1)"),
  models: z
    .array(modelEntry)
    .min(1)
    .max(MAX_CONSENSUS_MODELS)
    .optional()
    .describe(
      "1–8 models with stances, e.g. [{model:'glm-4.5',stance:'for'},{model:'kimi',stance:'against'}]",
    ),
  mode: z
    .enum(["parallel", "sequential"])
    .optional()
    .describe("parallel (default): all models in one call; sequential: one model per step_number"),
  step_number: z.number().int().min(1).optional().describe("Sequential mode: consults models[step_number-1]"),
  files: filesField,
  images: imagesField,
  continuation_id: continuationField,
  temperature: temperatureField,
  thinking_mode: thinkingModeField,
});
type ConsensusArgs = z.infer<typeof schema>;

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
interface RoundData {
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
function resolveCandidates(entries: ModelEntry[], services: Services): Candidate[] {
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

interface ConsultOptions {
  prompt: string;
  prior: Thread | undefined;
  files: string[];
  images: string[] | undefined;
  /** Absolute deadline of this model's call, ms on the monotonic clock. */
  deadlineAt: number;
  temperature: number | undefined;
  thinkingMode: ConsensusArgs["thinking_mode"];
}

/** Consults one model with its own stance only; never throws (a failure becomes an error entry). */
async function consult(
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
function modelDeadline(context: ToolContext): number {
  const remaining = context.remainingMs();
  const margin = Math.min(ANSWER_MARGIN_MS, remaining / 4);
  return now() + Math.max(0, Math.min(context.services.config.timeouts.expertAnalysisMs, remaining - margin));
}

function formatVerdicts(verdicts: VerdictEntry[]): string {
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

function finalFields(verdicts: VerdictEntry[]): Record<string, unknown> {
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

/** Checks the prompt and files shared by both modes; returns the validated file paths. */
async function validateInput(
  prompt: string | undefined,
  files: string[] | undefined,
  context: ToolContext,
): Promise<{ prompt: string; files: string[] } | { resend: Record<string, unknown> }> {
  if (prompt === undefined || prompt.trim() === "") {
    throw invalidArgument("prompt", "required: the proposal or question the models should judge");
  }
  const oversized = oversizedPrompt("prompt", prompt);
  if (oversized) return { resend: oversized };
  // Validate every path once, before fanning out, so a bad path fails the call rather than each model.
  const paths = files?.length ? await context.files.expand(files, "files", context.signal) : [];
  return { prompt, files: paths };
}

function requireModels(models: ModelEntry[] | undefined): ModelEntry[] {
  if (!models || models.length === 0) {
    throw invalidArgument(
      "models",
      "required: 1–8 entries {model, stance}, e.g. [{model:'glm-4.5',stance:'for'},{model:'kimi-k2.6',stance:'against'}]",
    );
  }
  return models;
}

/** With no provider configured every entry would fail alike: fail the call with the setup advice instead. */
function requireProvider(services: Services): void {
  // resolve("auto") throws NO_PROVIDER naming the variables to set when nothing is configured.
  if (services.registry.configuredProviders().length === 0) services.registry.resolve("auto");
}

async function runParallel(args: ConsensusArgs, context: ToolContext): Promise<Record<string, unknown>> {
  const { services } = context;
  requireProvider(services);
  const models = requireModels(args.models);
  const input = await validateInput(args.prompt, args.files, context);
  if ("resend" in input) return input.resend;
  const candidates = resolveCandidates(models, services);
  const thread = await loadThread(services, args.continuation_id);
  const deadlineAt = modelDeadline(context);
  let answered = 0;
  context.progress(`consulting ${candidates.length} models in parallel`);
  // Every model gets the same prompt and conversation, built before any verdict exists: blinded.
  const verdicts = await Promise.all(
    candidates.map((candidate) =>
      consult(context, candidate, {
        prompt: input.prompt,
        prior: thread,
        files: input.files,
        images: args.images,
        deadlineAt,
        temperature: args.temperature,
        thinkingMode: args.thinking_mode,
      }).then((verdict) => {
        answered += 1;
        context.progress(`consensus: ${answered}/${candidates.length} models done`);
        return verdict;
      }),
    ),
  );
  const round: RoundData = {
    mode: "parallel",
    prompt: input.prompt,
    models,
    files: input.files,
    round_start: thread?.turns.length ?? 0,
  };
  const continuationId = await recordTurns(services, thread, "consensus", [
    {
      role: "user",
      toolName: "consensus",
      content: input.prompt,
      files: input.files,
      data: { consensus_round: round },
    },
    {
      role: "assistant",
      toolName: "consensus",
      content: formatVerdicts(verdicts),
      data: { consensus_verdicts: verdicts },
    },
  ]);
  return { mode: "parallel", ...finalFields(verdicts), continuation_id: continuationId };
}

/** The latest consensus round recorded in a thread, with its first turn's index. */
function latestRound(thread: Thread): RoundData | undefined {
  for (let index = thread.turns.length - 1; index >= 0; index--) {
    const data = thread.turns[index]?.data?.consensus_round as RoundData | undefined;
    if (thread.turns[index]?.toolName === "consensus" && data) return data;
  }
  return undefined;
}

/** The sequential verdicts recorded after the round started, by step number (latest wins). */
function roundVerdicts(thread: Thread, round: RoundData): Map<number, VerdictEntry> {
  const verdicts = new Map<number, VerdictEntry>();
  for (const turn of thread.turns) {
    const data = turn.data?.consensus_verdict as { step_number: number; verdict: VerdictEntry } | undefined;
    if (turn.index > round.round_start && turn.toolName === "consensus" && data)
      verdicts.set(data.step_number, data.verdict);
  }
  return verdicts;
}

async function runSequential(args: ConsensusArgs, context: ToolContext): Promise<Record<string, unknown>> {
  const { services } = context;
  requireProvider(services);
  const stepNumber = args.step_number ?? 1;
  const thread = await loadThread(services, args.continuation_id);
  let round: RoundData;
  let prior: Thread | undefined;
  if (stepNumber === 1) {
    const models = requireModels(args.models);
    const input = await validateInput(args.prompt, args.files, context);
    if ("resend" in input) return input.resend;
    round = {
      mode: "sequential",
      prompt: input.prompt,
      models,
      files: input.files,
      round_start: thread?.turns.length ?? 0,
    };
    prior = thread;
  } else {
    const found = thread ? latestRound(thread) : undefined;
    if (!thread || !found || found.mode !== "sequential") {
      throw invalidArgument(
        "continuation_id",
        `step_number ${stepNumber} of a sequential consensus needs the continuation_id returned by its step 1${thread ? " (this thread holds no sequential consensus round)" : ""}; start with step_number 1`,
      );
    }
    round = args.models ? { ...found, models: args.models } : found;
    // Blinding: the model of this step sees the conversation before the round, not earlier verdicts.
    prior = { ...thread, turns: thread.turns.filter((turn) => turn.index < found.round_start) };
  }
  const candidates = resolveCandidates(round.models, services);
  const candidate = candidates[stepNumber - 1];
  if (!candidate) {
    throw invalidArgument(
      "step_number",
      `${stepNumber} is beyond the ${candidates.length} model(s) of this consensus; step_number i consults models[i-1]`,
    );
  }
  context.progress(`consulting ${candidate.entry.model} (step ${stepNumber}/${candidates.length})`);
  const verdict = await consult(context, candidate, {
    prompt: round.prompt,
    prior,
    files: round.files,
    images: args.images,
    deadlineAt: modelDeadline(context),
    temperature: args.temperature,
    thinkingMode: args.thinking_mode,
  });
  const verdictTurn = {
    role: "assistant" as const,
    toolName: "consensus",
    content: formatVerdicts([verdict]),
    data: { consensus_verdict: { step_number: stepNumber, verdict } },
  };
  const continuationId = await recordTurns(
    services,
    thread,
    "consensus",
    stepNumber === 1
      ? [
          {
            role: "user",
            toolName: "consensus",
            content: round.prompt,
            files: round.files,
            data: { consensus_round: round },
          },
          verdictTurn,
        ]
      : [verdictTurn],
  );
  const common = {
    mode: "sequential",
    step_number: stepNumber,
    total_steps: candidates.length,
    continuation_id: continuationId,
  };
  if (stepNumber < candidates.length) {
    const next = candidates[stepNumber];
    return {
      status: "pause_for_consensus",
      ...common,
      next_step_required: true,
      verdict,
      next_steps: `Note this verdict, then call consensus with mode "sequential", step_number ${stepNumber + 1}, continuation_id ${continuationId} to consult ${next?.entry.model ?? "the next model"} (${next?.stance ?? "neutral"}); it will not see earlier verdicts.`,
    };
  }
  const updated = await services.store.getThread(continuationId);
  const recorded = updated ? roundVerdicts(updated, round) : new Map<number, VerdictEntry>();
  const verdicts = candidates.flatMap((_, index) => {
    const found = recorded.get(index + 1);
    return found ? [found] : [];
  });
  const notConsulted = candidates
    .map((item, index) => ({ step_number: index + 1, model: item.entry.model, stance: item.stance }))
    .filter((item) => !recorded.has(item.step_number));
  return {
    ...common,
    next_step_required: false,
    ...finalFields(verdicts),
    ...(notConsulted.length > 0 ? { not_consulted: notConsulted } : {}),
  };
}

export const consensusTool = defineTool({
  name: "consensus",
  kind: "workflow",
  description:
    "Get verdicts from several models (1–8, each with a stance: for/against/neutral) on a proposal, each blinded to the others. Default mode parallel: all at once in one call; a failed model is reported, the others kept. Synthesise the verdicts.",
  annotations: { title: "Multi-model consensus", readOnlyHint: true, openWorldHint: true },
  schema,
  selectModel(args, services) {
    // Parallel mode spans several models, possibly on several providers: no single model to admit
    // under, so undefined (the call is admitted under the global, tool and session caps only).
    // Sequential mode consults one model per step: admit it under its provider's cap.
    if ((args.mode ?? "parallel") === "parallel") return undefined;
    const entry = args.models?.[(args.step_number ?? 1) - 1];
    if (!entry) return undefined;
    try {
      return services.registry.resolve(entry.model);
    } catch {
      // An unknown model is reported as that entry's error by run(), not as a failed admission.
      return undefined;
    }
  },
  run: (args, context) =>
    (args.mode ?? "parallel") === "parallel" ? runParallel(args, context) : runSequential(args, context),
});
