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
import { invalidArgument } from "../base/errors.js";
import type { Thread } from "../store/store.js";
import {
  continuationField,
  filesField,
  imagesField,
  loadThread,
  oversizedPrompt,
  recordTurns,
  temperatureField,
  thinkingModeField,
} from "./common.js";
import { defineTool, type Services, type ToolContext } from "./framework.js";
import {
  consult,
  finalFields,
  formatVerdicts,
  MAX_CONSENSUS_MODELS,
  modelDeadline,
  resolveCandidates,
  modelEntry,
  type ModelEntry,
  type RoundData,
  type VerdictEntry,
} from "./consensus-consult.js";

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
