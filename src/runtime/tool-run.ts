/**
 * One run of a tool inside an admitted call: its ToolContext (deadline, signal, files, progress and
 * the provider path every provider request goes through), and the metadata added to its result.
 */
import type { TimeoutLayer } from "../base/errors.js";
import type { ProviderName } from "../config/load.js";
import type { Admission } from "../pipeline/admission.js";
import type { Providers } from "../providers/index.js";
import type { ResolvedModel } from "../providers/registry.js";
import { now } from "../timing/deadline.js";
import type { Services, ToolContext, ToolDefinition } from "../tools/framework.js";
import { createProviderPath, type CallUsage } from "./provider-path.js";

/** What a run needs from the call it serves. Times are ms on the monotonic clock. */
export interface RunContext {
  traceId: string;
  deadlineAt: number;
  budgetMs: number;
  layer: TimeoutLayer;
  model: ResolvedModel | undefined;
  /** The provider whose slot admission took (the model's, or the tool's `selectProvider`). */
  admittedProvider: ProviderName | undefined;
  /** The client's filesystem roots. */
  roots: readonly string[] | undefined;
}

export interface RunScope {
  services: Services;
  providers: Providers;
  admission: Admission;
}

/**
 * Runs `tool` with `args` under `signal`; the phase shown by heartbeats is written to `phase`,
 * provider attempts and tokens to `usage`. Resolves to the tool's result with its metadata
 * (tool_name, model_used, provider_used, model_note, trace_id).
 * @throws whatever the tool throws (ExaiError for every expected failure).
 */
export async function runTool(
  scope: RunScope,
  tool: ToolDefinition,
  args: Record<string, unknown>,
  context: RunContext,
  signal: AbortSignal,
  phase: { message: string },
  usage: CallUsage,
): Promise<Record<string, unknown>> {
  const { services } = scope;
  const progress = (message: string) => {
    phase.message = message;
  };
  const toolContext: ToolContext = {
    tool: tool.name,
    traceId: context.traceId,
    signal,
    deadlineAt: context.deadlineAt,
    budgetMs: context.budgetMs,
    layer: context.layer,
    services,
    files: services.files(context.roots),
    model: context.model,
    remainingMs: () => Math.max(0, context.deadlineAt - now()),
    progress,
    ...createProviderPath({
      providers: scope.providers,
      admission: scope.admission,
      admittedProvider: context.admittedProvider,
      traceId: context.traceId,
      signal,
      deadlineAt: context.deadlineAt,
      budgetMs: context.budgetMs,
      layer: context.layer,
      progress,
      usage,
    }),
  };
  const result = await tool.run(args, toolContext);
  const metadata = (result.metadata as Record<string, unknown> | undefined) ?? {};
  return {
    ...result,
    metadata: {
      tool_name: tool.name,
      ...(context.model
        ? { model_used: context.model.model.id, provider_used: context.model.model.provider }
        : {}),
      ...(context.model?.note ? { model_note: context.model.note } : {}),
      ...metadata,
      trace_id: context.traceId,
    },
  };
}
