/**
 * Call handling of the daemon's WebSocket protocol: a call_tool frame runs on the shared
 * runtime's executor with the daemon ceiling (EXAI_WS_CALL_TIMEOUT), the caller's `deadline_ms`,
 * the WebSocket session as admission session, the caller's `roots` as file sandbox (the daemon's
 * EXAI_ALLOWED_ROOTS still wins), and no OVER_CAPACITY retries here (the shim retries, so a
 * refusal comes back at once with retry_after). request_id idempotency, ownership and call_key
 * duplicates live in ./requests.ts. While the daemon drains, new calls are refused with
 * OVER_CAPACITY (cap "shutdown").
 */
import { randomUUID } from "node:crypto";
import { ExaiError, toExaiError } from "../base/errors.js";
import type { Logger } from "../base/logging.js";
import type { CallOutcome, CallRequest, Executor } from "../runtime/executor.js";
import type { CallToolFrame } from "../mcp/frames.js";
import { toCallToolResult } from "../mcp/server.js";
import type { DaemonMetrics } from "./metrics.js";
import type { CallResultBody, RequestConnection, RequestRegistry, StartCall } from "./requests.js";

export const newTraceId = (): string => randomUUID().replace(/-/g, "");

export interface CallHandlerDeps {
  /** The executor of the current generation. */
  executor: Executor;
  requests: RequestRegistry;
  metrics: DaemonMetrics;
  /** The daemon ceiling, ms (EXAI_WS_CALL_TIMEOUT). */
  ceilingMs: number;
  draining(): boolean;
  logger: Logger;
}

export interface CallHandler {
  /** Handles one call_tool frame of `connection`: started, re-attached, or refused (ack + result). */
  handleCall(connection: RequestConnection, frame: CallToolFrame): void;
  /** The outcome of a call refused because the daemon is shutting down (for /mcp sessions). */
  shuttingDownOutcome(request: CallRequest): CallOutcome;
}

/** The OVER_CAPACITY error of a call that arrives while the daemon drains. */
function shuttingDown(): ExaiError {
  return new ExaiError(
    "OVER_CAPACITY",
    "the daemon is shutting down; retry in a moment (a new daemon will serve it)",
    { retryable: true, retryAfterS: 1, details: { cap: "shutdown" } },
  );
}

/** The final part of call_tool_res for an executor outcome. */
function resultBody(outcome: CallOutcome): CallResultBody {
  const summary = { ...outcome.summary };
  if (!outcome.ok && outcome.error) return { error: outcome.error, summary };
  const result = toCallToolResult(outcome);
  return {
    outputs: {
      content: result.content,
      ...(result.structuredContent ? { structuredContent: result.structuredContent } : {}),
    },
    summary,
  };
}

/** The call handler of one daemon. */
export function createCallHandler(deps: CallHandlerDeps): CallHandler {
  const { executor, requests, metrics, ceilingMs, logger } = deps;

  /** A refusal decided here (never reached the executor): ack + result with `error`. */
  const refuse = (connection: RequestConnection, frame: CallToolFrame, error: ExaiError) => {
    const traceId = frame.trace_id ?? newTraceId();
    connection.send({ op: "call_tool_ack", request_id: frame.request_id, trace_id: traceId, timeout_s: 0 });
    connection.send({
      op: "call_tool_res",
      request_id: frame.request_id,
      error: error.toPayload(traceId),
      summary: {
        event: "CALL SUMMARY",
        tool: frame.name,
        trace_id: traceId,
        outcome: "error",
        error_code: error.code,
        duration_ms: 0,
        session: connection.sessionId,
      },
    });
    logger.info(
      { tool: frame.name, trace_id: traceId, request_id: frame.request_id, error_code: error.code },
      "call refused",
    );
  };

  /** Runs the frame's call on the executor (the registry calls this once per request_id). */
  const start = (connection: RequestConnection, frame: CallToolFrame): StartCall => {
    return (signal, progress) => {
      const traceId = frame.trace_id ?? newTraceId();
      const tool = executor.findTool(frame.name);
      const budgetMs = Math.min(
        ceilingMs,
        tool ? executor.budgetFor(tool) : ceilingMs,
        frame.deadline_ms ?? Number.POSITIVE_INFINITY,
      );
      const result = executor
        .call({
          tool: frame.name,
          arguments: frame.arguments,
          traceId,
          ...(frame.call_key !== undefined ? { callKey: frame.call_key } : {}),
          ...(connection.sessionId !== undefined ? { sessionId: connection.sessionId } : {}),
          ...(frame.deadline_ms !== undefined ? { callerBudgetMs: frame.deadline_ms } : {}),
          ...(frame.roots !== undefined && frame.roots.length > 0 ? { roots: frame.roots } : {}),
          ceiling: { layer: "daemon", ms: ceilingMs },
          signal,
          retryOverCapacity: false,
          onProgress: (event) =>
            progress({ elapsed_s: event.elapsedS, remaining_s: event.remainingS, message: event.message }),
        })
        .then(resultBody, (error: unknown): CallResultBody => {
          // executor.call never rejects; this keeps a bug from leaving the caller without an answer.
          const failure = toExaiError(error, "daemon");
          logger.error({ err: error, trace_id: traceId }, "executor.call rejected");
          return {
            error: failure.toPayload(traceId),
            summary: { tool: frame.name, trace_id: traceId, outcome: "error", error_code: failure.code },
          };
        });
      return { traceId, timeoutS: budgetMs / 1000, result };
    };
  };

  const handleCall = (connection: RequestConnection, frame: CallToolFrame) => {
    if (deps.draining()) {
      metrics.recordRejection("OVER_CAPACITY", "shutdown");
      refuse(connection, frame, shuttingDown());
      return;
    }
    const submitted = requests.submit(frame, connection, start(connection, frame));
    if (submitted.kind === "duplicate") {
      metrics.recordRejection("DUPLICATE", submitted.reason);
      refuse(
        connection,
        frame,
        new ExaiError(
          "DUPLICATE",
          submitted.reason === "call_key"
            ? `a call with this call_key is already in flight as request ${submitted.originalRequestId}; wait for its result or send a different call_key`
            : `request_id ${submitted.originalRequestId} is already taken by another session or by a call with other arguments; send a fresh request_id for a new call`,
          { details: { original_request_id: submitted.originalRequestId } },
        ),
      );
    } else if (submitted.kind !== "started") {
      logger.info(
        { request_id: frame.request_id, trace_id: submitted.traceId, how: submitted.kind },
        "request re-attached",
      );
    }
  };

  return {
    handleCall,
    shuttingDownOutcome: (request) => {
      metrics.recordRejection("OVER_CAPACITY", "shutdown");
      return shuttingDownOutcome(request);
    },
  };
}

/** The outcome of a call /mcp refuses while the daemon drains (OVER_CAPACITY, cap "shutdown"). */
function shuttingDownOutcome(request: CallRequest): CallOutcome {
  const traceId = request.traceId ?? newTraceId();
  return {
    ok: false,
    error: shuttingDown().toPayload(traceId),
    traceId,
    budgetMs: 0,
    summary: {
      event: "CALL SUMMARY",
      tool: request.tool,
      trace_id: traceId,
      call_key_hash: "",
      attempts: 0,
      duration_ms: 0,
      queue_ms: 0,
      budget_ms: 0,
      layer: "daemon",
      outcome: "error",
      error_code: "OVER_CAPACITY",
      coalesced: false,
      usage: { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 },
      ...(request.sessionId !== undefined ? { session: request.sessionId } : {}),
    },
  };
}
