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
import { now, raceSignal, startDeadline, type Deadline } from "../timing/deadline.js";
import { acquireWithRetry } from "../pipeline/admission-retry.js";
import type { ProviderName } from "../config/load.js";
import type { ResolvedModel } from "../providers/registry.js";
import { parseArguments, type ToolDefinition } from "../tools/framework.js";
import { checkArgumentDepth } from "./arguments.js";
import type { CallOutcome, CallRequest, CallSummary, Executor, ExecutorDependencies } from "./call-types.js";
import { emptyUsage, type CallUsage } from "./provider-path.js";
import { runTool, type RunContext, type RunScope } from "./tool-run.js";
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

/** What one call has gathered so far, for its CALL SUMMARY. */
interface CallRecord {
  started: number;
  traceId: string;
  tool: ToolDefinition | undefined;
  budgetMs: number;
  layer: TimeoutLayer;
  model: ResolvedModel | undefined;
  callKey: string;
  queueMs: number;
  coalesced: boolean;
  usage: CallUsage;
}

/** The CALL SUMMARY of a finished call. */
function summaryOf(record: CallRecord, request: CallRequest, error: ExaiError | undefined): CallSummary {
  const { model, usage } = record;
  return {
    event: "CALL SUMMARY",
    tool: record.tool?.name ?? normaliseToolName(request.tool),
    trace_id: record.traceId,
    call_key_hash: hash(record.callKey || record.traceId),
    ...(model ? { model: model.model.id } : {}),
    ...(model || usage.providers[0]
      ? { provider: model?.model.provider ?? (usage.providers[0] as string) }
      : {}),
    ...(usage.endpoints.length > 0 ? { endpoints: [...usage.endpoints] } : {}),
    attempts: usage.attempts,
    duration_ms: Math.round((now() - record.started) * 10) / 10,
    queue_ms: Math.round(record.queueMs * 10) / 10,
    budget_ms: record.budgetMs,
    layer: record.layer,
    outcome: error ? "error" : "success",
    ...(error ? { error_code: error.code } : {}),
    coalesced: record.coalesced,
    usage: {
      prompt_tokens: usage.usage.promptTokens,
      completion_tokens: usage.usage.completionTokens,
      total_tokens: usage.usage.totalTokens,
    },
    ...(request.sessionId !== undefined ? { session: request.sessionId } : {}),
  };
}

/** The tightest of the tool budget, the serving layer's ceiling and the caller's budget, ms. */
function tightestBudget(toolMs: number, request: CallRequest): { layer: TimeoutLayer; ms: number } {
  const limits: Array<{ layer: TimeoutLayer; ms: number }> = [{ layer: "tool", ms: toolMs }];
  if (request.ceiling) limits.push(request.ceiling);
  if (request.callerBudgetMs !== undefined)
    limits.push({ layer: "client", ms: Math.max(0, request.callerBudgetMs) });
  return limits.reduce((a, b) => (b.ms < a.ms ? b : a));
}

/** Sends a progress event every `intervalMs` while the call runs (when the caller listens). */
function startHeartbeat(
  request: CallRequest,
  record: CallRecord,
  phase: { message: string },
  deadline: Deadline,
  intervalMs: number,
): NodeJS.Timeout | undefined {
  const onProgress = request.onProgress;
  const name = record.tool?.name ?? request.tool;
  if (!onProgress) return undefined;
  const heartbeat = setInterval(() => {
    const elapsed = now() - record.started;
    const remaining = deadline.remainingMs();
    onProgress({
      progress: Math.round(elapsed),
      total: Math.round(record.budgetMs),
      elapsedS: Math.round(elapsed / 100) / 10,
      remainingS: Math.round(remaining / 100) / 10,
      message: `${name}: ${phase.message} — ${formatSeconds(elapsed / 1000)} elapsed, ${formatSeconds(remaining / 1000)} left`,
    });
  }, intervalMs);
  heartbeat.unref();
  return heartbeat;
}

/** What every call of one executor shares. */
interface ExecutorState {
  dependencies: ExecutorDependencies;
  runScope: RunScope;
  byName: Map<string, ToolDefinition>;
  running: Set<AbortController>;
  drainWaiters: Set<() => void>;
  /** One reason object for the cleanup abort of every finished call (an Error per call was measurable). */
  callEnded: ExaiError;
  /** Phase of each shared execution, read by every waiter's heartbeat. */
  phases: Map<string, { message: string }>;
  budgetFor(tool: ToolDefinition): number;
  findTool(name: string): ToolDefinition | undefined;
  writeSummary(summary: CallSummary): void;
  admit(
    request: CallRequest,
    tool: ToolDefinition,
    provider: ProviderName | undefined,
    deadlineAt: number,
    signal: AbortSignal,
  ): Promise<Lease>;
}

export function createExecutor(dependencies: ExecutorDependencies): Executor {
  const { services, admission } = dependencies;
  const { config, logger } = services;
  const byName = new Map(dependencies.tools.map((tool) => [tool.name.toLowerCase(), tool]));
  const listeners = new Set<(summary: CallSummary) => void>();
  const state: ExecutorState = {
    dependencies,
    runScope: { services, providers: dependencies.providers, admission },
    byName,
    running: new Set<AbortController>(),
    drainWaiters: new Set<() => void>(),
    callEnded: new ExaiError("CANCELLED", "the call ended"),
    phases: new Map(),
    budgetFor: (tool) =>
      tool.kind === "workflow" ? config.timeouts.workflowToolMs : config.timeouts.simpleToolMs,
    findTool: (name) => byName.get(normaliseToolName(name).toLowerCase()),
    writeSummary(summary) {
      logger.info(summary, "CALL SUMMARY");
      services.appendToolCallLog({ at: new Date().toISOString(), ...summary });
      for (const listener of listeners) listener(summary);
    },
    /** Takes admission, retrying OVER_CAPACITY with jitter inside the deadline when asked to. */
    admit(request, tool, provider, deadlineAt, signal) {
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
    },
  };
  const { running, drainWaiters } = state;

  return {
    findTool: state.findTool,
    tools: () => dependencies.tools,
    call: (request) => runCall(state, request),
    budgetFor: state.budgetFor,
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

/** Runs one call (see `Executor.call`); never throws. */
async function runCall(state: ExecutorState, request: CallRequest): Promise<CallOutcome> {
  const { dependencies } = state;
  const { services } = dependencies;
  const { config, logger } = services;
  const record: CallRecord = {
    started: now(),
    traceId: request.traceId ?? randomUUID().replace(/-/g, ""),
    tool: undefined,
    budgetMs: config.timeouts.simpleToolMs,
    layer: "tool",
    model: undefined,
    callKey: request.callKey ?? "",
    queueMs: 0,
    coalesced: false,
    usage: emptyUsage(),
  };
  const controller = new AbortController();
  state.running.add(controller);
  let lease: Lease | undefined;
  let heartbeat: NodeJS.Timeout | undefined;
  let deadline: Deadline | undefined;
  const finish = (outcome: { result?: Record<string, unknown>; error?: ExaiError }): CallOutcome => {
    if (record.tool && outcome.result)
      dependencies.admission.recordDuration(record.tool.name, now() - record.started);
    const summary = summaryOf(record, request, outcome.error);
    state.writeSummary(summary);
    // The one exit of every transport (stdio, /mcp, WebSocket): no configured secret leaves.
    const redactor = dependencies.redactor;
    const result = outcome.result && redactor ? redactor.value(outcome.result) : outcome.result;
    const error = outcome.error?.toPayload(record.traceId);
    return {
      ok: !outcome.error,
      ...(result ? { result } : {}),
      ...(error ? { error: redactor ? redactor.value(error) : error } : {}),
      traceId: record.traceId,
      budgetMs: record.budgetMs,
      summary,
    };
  };

  try {
    const tool = state.findTool(request.tool);
    if (!tool) {
      throw new ExaiError(
        "INVALID_ARGUMENT",
        `unknown tool ${JSON.stringify(request.tool)}; available: ${[...state.byName.keys()].join(", ")}`,
        { details: { field: "name", tool: request.tool } },
      );
    }
    record.tool = tool;
    // Before any schema or recursive walk sees them (zod, stableJson, error messages).
    checkArgumentDepth(request.arguments, config.limits.argumentDepth);
    const args = parseArguments(tool, request.arguments) as Record<string, unknown>;
    record.callKey ||= semanticCallKey(tool.name, args);
    const tightest = tightestBudget(state.budgetFor(tool), request);
    record.budgetMs = tightest.ms;
    record.layer = tightest.layer;
    const model = tool.selectModel?.(args, services);
    record.model = model;
    deadline = startDeadline(
      record.budgetMs,
      record.layer,
      request.signal ? AbortSignal.any([request.signal, controller.signal]) : controller.signal,
    );
    const queueStart = now();
    const admittedProvider = model?.model.provider ?? tool.selectProvider?.(args, services);
    lease = await state.admit(request, tool, admittedProvider, deadline.at, deadline.signal);
    record.queueMs = now() - queueStart;

    // Calls only share an execution when they would read files through the same sandbox.
    const key = `${tool.name}:${record.callKey}:${[...(request.roots ?? [])].sort().join("|")}`;
    const phase = state.phases.get(key) ?? { message: model ? `queued for ${model.model.id}` : "running" };
    const interval = Math.max(
      10,
      tool.kind === "workflow"
        ? Math.min(config.timeouts.progressIntervalMs, config.timeouts.expertHeartbeatMs)
        : config.timeouts.progressIntervalMs,
    );
    heartbeat = startHeartbeat(request, record, phase, deadline, interval);
    const context: RunContext = {
      traceId: record.traceId,
      deadlineAt: deadline.at,
      budgetMs: record.budgetMs,
      layer: record.layer,
      model,
      admittedProvider,
      roots: request.roots,
    };
    const canCoalesce = !dependencies.coalesceDisabled.has(tool.name) && request.callKey === undefined;
    const result = canCoalesce
      ? await runShared(state, { key, tool, args, context, phase, record }, deadline)
      : await raceSignal(
          runTool(state.runScope, tool, args, context, deadline.signal, phase, record.usage),
          deadline.signal,
        );
    return finish({ result });
  } catch (error) {
    const failure =
      deadline?.signal.aborted && ExaiError.is(deadline.signal.reason)
        ? deadline.signal.reason
        : toExaiError(error, record.tool?.name ?? "exai");
    if (failure.code === "INTERNAL")
      logger.error(
        { err: error, trace_id: record.traceId, tool: record.tool?.name },
        "internal error in a tool call",
      );
    return finish({ error: failure });
  } finally {
    clearInterval(heartbeat);
    // Abort whatever the call started (HTTP requests, timers) — a no-op when it finished cleanly.
    controller.abort(state.callEnded);
    deadline?.dispose();
    lease?.release();
    state.running.delete(controller);
    if (state.running.size === 0) for (const resolve of state.drainWaiters) resolve();
  }
}

interface SharedRun {
  key: string;
  tool: ToolDefinition;
  args: Record<string, unknown>;
  context: RunContext;
  phase: { message: string };
  record: CallRecord;
}

/**
 * Runs the call through the coalescer: identical calls share one execution. The shared execution
 * runs under its own deadline (the same budget) and is aborted only when every waiter has left;
 * each waiter races its own deadline in coalescer.run.
 */
async function runShared(
  state: ExecutorState,
  run: SharedRun,
  deadline: Deadline,
): Promise<Record<string, unknown>> {
  const { config } = state.dependencies.services;
  const { key, tool, args, context, phase, record } = run;
  const { budgetMs, layer } = record;
  const ttl = Math.min(config.timeouts.daemonMs, budgetMs * 2);
  const shared = await state.dependencies.coalescer.run(
    key,
    (sharedSignal) => {
      state.phases.set(key, phase);
      // The run keeps the first caller's budget (tools plan their work, e.g. per-model
      // budgets, by it); later callers join only if it ends no earlier than their own.
      const sharedDeadline = startDeadline(budgetMs, layer, sharedSignal);
      return runTool(
        state.runScope,
        tool,
        args,
        { ...context, deadlineAt: sharedDeadline.at },
        sharedDeadline.signal,
        phase,
        record.usage,
      ).finally(() => {
        sharedDeadline.dispose();
        state.phases.delete(key);
      });
    },
    deadline.signal,
    ttl,
    { at: deadline.at, toleranceMs: Math.max(1000, budgetMs * 0.1) },
  );
  record.coalesced = shared.shared;
  if (!shared.shared) return shared.value;
  return {
    ...shared.value,
    metadata: { ...(shared.value.metadata as object), trace_id: record.traceId, coalesced: true },
  };
}
