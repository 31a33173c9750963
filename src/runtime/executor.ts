/**
 * The call executor (SPEC §6): one tool call from arrival to result, used alike by the stdio
 * server, the daemon and `exai call`.
 *
 *   name + arguments → validate → pick model → deadline → admission (OVER_CAPACITY at once) →
 *   coalesce identical calls → run the tool with heartbeats → result or error → CALL SUMMARY.
 *
 * `call` never throws: every failure becomes an error payload with a stable code and the trace_id.
 * When the deadline passes the caller gets TIMEOUT at once (the race does not wait for the tool to
 * unwind) and everything the call started is aborted through its signal.
 */
import { createHash, randomUUID } from "node:crypto";
import { ExaiError, formatSeconds, toExaiError, type TimeoutLayer } from "../base/errors.js";
import type { Lease } from "../pipeline/admission.js";
import { now, raceSignal, startDeadline } from "../timing/deadline.js";
import { acquireWithRetry } from "../pipeline/admission-retry.js";
import type { ProviderName } from "../config/load.js";
import type { ResolvedModel } from "../providers/registry.js";
import { parseArguments, type ToolDefinition } from "../tools/framework.js";
import { checkArgumentDepth } from "./arguments.js";
import type { CallOutcome, CallRequest, CallSummary, Executor, ExecutorDependencies } from "./call-types.js";
import { emptyUsage } from "./provider-path.js";
import { runTool } from "./tool-run.js";
import { stableJson } from "../base/stable-json.js";

export type {
  CallOutcome,
  CallRequest,
  CallSummary,
  Executor,
  ExecutorDependencies,
  ProgressEvent,
  ToolListing,
} from "./call-types.js";

/** Strips the `_EXAI-WS` / `-EXAI-WS` suffix some clients add (SPEC §4). */
export function normaliseToolName(name: string): string {
  return name.trim().replace(/[-_]EXAI-WS$/i, "");
}

/** The semantic call key: sha256 of the tool name and its arguments in stable JSON. */
export function semanticCallKey(tool: string, args: unknown): string {
  return createHash("sha256")
    .update(`${tool}\n${stableJson(args)}`)
    .digest("hex");
}

const hash = (text: string) => createHash("sha256").update(text).digest("hex").slice(0, 12);

export function createExecutor(dependencies: ExecutorDependencies): Executor {
  const { services, admission, coalescer } = dependencies;
  const runScope = { services, providers: dependencies.providers, admission };
  const { config, logger } = services;
  const byName = new Map(dependencies.tools.map((tool) => [tool.name.toLowerCase(), tool]));
  const listeners = new Set<(summary: CallSummary) => void>();
  const running = new Set<AbortController>();
  const drainWaiters = new Set<() => void>();
  // One reason object for the cleanup abort of every finished call: building an Error per call
  // (stack capture) was a measurable part of the per-call cost.
  const callEnded = new ExaiError("CANCELLED", "the call ended");
  /** Phase of each shared execution, read by every waiter's heartbeat. */
  const phases = new Map<string, { message: string }>();

  const budgetFor = (tool: ToolDefinition): number =>
    tool.kind === "workflow" ? config.timeouts.workflowToolMs : config.timeouts.simpleToolMs;

  const findTool = (name: string) => byName.get(normaliseToolName(name).toLowerCase());

  const writeSummary = (summary: CallSummary) => {
    logger.info(summary, "CALL SUMMARY");
    services.appendToolCallLog({ at: new Date().toISOString(), ...summary });
    for (const listener of listeners) listener(summary);
  };

  /** Takes admission, retrying OVER_CAPACITY with jitter inside the deadline when asked to. */
  const admit = async (
    request: CallRequest,
    tool: ToolDefinition,
    provider: ProviderName | undefined,
    deadlineAt: number,
    signal: AbortSignal,
  ): Promise<Lease> => {
    // A call cancelled before (or while) it is admitted never takes a slot (acquireWithRetry).
    return acquireWithRetry(
      admission,
      {
        tool: tool.name,
        ...(provider ? { provider } : {}),
        ...(request.sessionId !== undefined ? { session: request.sessionId } : {}),
      },
      {
        retries: request.retryOverCapacity ? config.admission.retries : 0,
        deadlineAt,
        signal,
        ...(dependencies.random ? { random: dependencies.random } : {}),
      },
    );
  };

  const call = async (request: CallRequest): Promise<CallOutcome> => {
    const started = now();
    const traceId = request.traceId ?? randomUUID().replace(/-/g, "");
    let tool: ToolDefinition | undefined;
    let budgetMs = config.timeouts.simpleToolMs;
    let layer: TimeoutLayer = "tool";
    let model: ResolvedModel | undefined;
    let callKey = request.callKey ?? "";
    let queueMs = 0;
    let coalesced = false;
    const usage = emptyUsage();
    const controller = new AbortController();
    running.add(controller);
    let lease: Lease | undefined;
    let heartbeat: NodeJS.Timeout | undefined;
    let deadline: ReturnType<typeof startDeadline> | undefined;
    const finish = (outcome: { result?: Record<string, unknown>; error?: ExaiError }): CallOutcome => {
      const duration = now() - started;
      if (tool && outcome.result) admission.recordDuration(tool.name, duration);
      const summary: CallSummary = {
        event: "CALL SUMMARY",
        tool: tool?.name ?? normaliseToolName(request.tool),
        trace_id: traceId,
        call_key_hash: hash(callKey || traceId),
        ...(model ? { model: model.model.id } : {}),
        ...(model || usage.providers[0]
          ? { provider: model?.model.provider ?? (usage.providers[0] as string) }
          : {}),
        ...(usage.endpoints.length > 0 ? { endpoints: [...usage.endpoints] } : {}),
        attempts: usage.attempts,
        duration_ms: Math.round(duration * 10) / 10,
        queue_ms: Math.round(queueMs * 10) / 10,
        budget_ms: budgetMs,
        layer,
        outcome: outcome.error ? "error" : "success",
        ...(outcome.error ? { error_code: outcome.error.code } : {}),
        coalesced,
        usage: {
          prompt_tokens: usage.usage.promptTokens,
          completion_tokens: usage.usage.completionTokens,
          total_tokens: usage.usage.totalTokens,
        },
        ...(request.sessionId !== undefined ? { session: request.sessionId } : {}),
      };
      writeSummary(summary);
      // The one exit of every transport (stdio, /mcp, WebSocket): no configured secret leaves.
      const redactor = dependencies.redactor;
      const result = outcome.result && redactor ? redactor.value(outcome.result) : outcome.result;
      const error = outcome.error?.toPayload(traceId);
      return {
        ok: !outcome.error,
        ...(result ? { result } : {}),
        ...(error ? { error: redactor ? redactor.value(error) : error } : {}),
        traceId,
        budgetMs,
        summary,
      };
    };

    try {
      tool = findTool(request.tool);
      if (!tool) {
        throw new ExaiError(
          "INVALID_ARGUMENT",
          `unknown tool ${JSON.stringify(request.tool)}; available: ${[...byName.keys()].join(", ")}`,
          { details: { field: "name", tool: request.tool } },
        );
      }
      // Before any schema or recursive walk sees them (zod, stableJson, error messages).
      checkArgumentDepth(request.arguments, config.limits.argumentDepth);
      const args = parseArguments(tool, request.arguments) as Record<string, unknown>;
      callKey ||= semanticCallKey(tool.name, args);
      const limits: Array<{ layer: TimeoutLayer; ms: number }> = [{ layer: "tool", ms: budgetFor(tool) }];
      if (request.ceiling) limits.push(request.ceiling);
      if (request.callerBudgetMs !== undefined)
        limits.push({ layer: "client", ms: Math.max(0, request.callerBudgetMs) });
      const tightest = limits.reduce((a, b) => (b.ms < a.ms ? b : a));
      budgetMs = tightest.ms;
      layer = tightest.layer;
      model = tool.selectModel?.(args, services);
      deadline = startDeadline(
        budgetMs,
        layer,
        request.signal ? AbortSignal.any([request.signal, controller.signal]) : controller.signal,
      );
      const signal = deadline.signal;
      const deadlineAt = deadline.at;

      const currentTool = tool;
      const queueStart = now();
      const admittedProvider = model?.model.provider ?? tool.selectProvider?.(args, services);
      lease = await admit(request, currentTool, admittedProvider, deadlineAt, signal);
      queueMs = now() - queueStart;

      // Calls only share an execution when they would read files through the same sandbox.
      const key = `${tool.name}:${callKey}:${[...(request.roots ?? [])].sort().join("|")}`;
      const canCoalesce = !dependencies.coalesceDisabled.has(tool.name) && request.callKey === undefined;
      const phase = phases.get(key) ?? { message: model ? `queued for ${model.model.id}` : "running" };
      const interval = Math.max(
        10,
        tool.kind === "workflow"
          ? Math.min(config.timeouts.progressIntervalMs, config.timeouts.expertHeartbeatMs)
          : config.timeouts.progressIntervalMs,
      );
      if (request.onProgress) {
        const onProgress = request.onProgress;
        heartbeat = setInterval(() => {
          const elapsed = now() - started;
          onProgress({
            progress: Math.round(elapsed),
            total: Math.round(budgetMs),
            elapsedS: Math.round(elapsed / 100) / 10,
            remainingS: Math.round((deadline?.remainingMs() ?? 0) / 100) / 10,
            message: `${currentTool.name}: ${phase.message} — ${formatSeconds(elapsed / 1000)} elapsed, ${formatSeconds((deadline?.remainingMs() ?? 0) / 1000)} left`,
          });
        }, interval);
        heartbeat.unref();
      }
      const context = { traceId, deadlineAt, budgetMs, layer, model, admittedProvider, roots: request.roots };
      let result: Record<string, unknown>;
      if (canCoalesce) {
        // The shared execution runs under its own deadline (the same budget) and is aborted only
        // when every waiter has left; each waiter races its own deadline in coalescer.run.
        const ttl = Math.min(config.timeouts.daemonMs, budgetMs * 2);
        const shared = await coalescer.run(
          key,
          (sharedSignal) => {
            phases.set(key, phase);
            // The run keeps the first caller's budget (tools plan their work, e.g. per-model
            // budgets, by it); later callers join only if it ends no earlier than their own.
            const sharedDeadline = startDeadline(budgetMs, layer, sharedSignal);
            return runTool(
              runScope,
              currentTool,
              args,
              { ...context, deadlineAt: sharedDeadline.at },
              sharedDeadline.signal,
              phase,
              usage,
            ).finally(() => {
              sharedDeadline.dispose();
              phases.delete(key);
            });
          },
          signal,
          ttl,
          { at: deadlineAt, toleranceMs: Math.max(1000, budgetMs * 0.1) },
        );
        coalesced = shared.shared;
        result = shared.value;
        if (coalesced)
          result = {
            ...result,
            metadata: { ...(result.metadata as object), trace_id: traceId, coalesced: true },
          };
      } else {
        result = await raceSignal(
          runTool(runScope, currentTool, args, context, signal, phase, usage),
          signal,
        );
      }
      return finish({ result });
    } catch (error) {
      const failure =
        deadline?.signal.aborted && ExaiError.is(deadline.signal.reason)
          ? deadline.signal.reason
          : toExaiError(error, tool?.name ?? "exai");
      if (failure.code === "INTERNAL")
        logger.error({ err: error, trace_id: traceId, tool: tool?.name }, "internal error in a tool call");
      return finish({ error: failure });
    } finally {
      clearInterval(heartbeat);
      // Abort whatever the call started (HTTP requests, timers) — a no-op when it finished cleanly.
      controller.abort(callEnded);
      deadline?.dispose();
      lease?.release();
      running.delete(controller);
      if (running.size === 0) for (const resolve of drainWaiters) resolve();
    }
  };

  return {
    findTool,
    tools: () => dependencies.tools,
    call,
    budgetFor,
    inflight: () => running.size,
    onSummary(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    abortAll(reason) {
      for (const controller of running) controller.abort(reason);
    },
    drain(timeoutMs) {
      if (running.size === 0) return Promise.resolve();
      return new Promise<void>((resolve) => {
        const timer = setTimeout(done, timeoutMs);
        timer.unref();
        function done() {
          clearTimeout(timer);
          drainWaiters.delete(done);
          resolve();
        }
        drainWaiters.add(done);
      });
    },
  };
}
