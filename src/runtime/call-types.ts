/**
 * The shapes of a tool call through the executor: the request, the CALL SUMMARY it ends with, its
 * outcome, progress events, and the Executor interface every transport uses.
 */
import type { ErrorPayload, ExaiError, TimeoutLayer } from "../base/errors.js";
import type { Redactor } from "../base/redact.js";
import type { Admission } from "../pipeline/admission.js";
import type { Coalescer } from "../pipeline/coalesce.js";
import type { Providers } from "../providers/index.js";
import type { Services, ToolDefinition } from "../tools/framework.js";

export interface ProgressEvent {
  /** Monotonic progress value for MCP (elapsed ms). */
  progress: number;
  /** Budget of the call, ms (MCP `total`). */
  total: number;
  elapsedS: number;
  remainingS: number;
  message: string;
}

export interface CallRequest {
  /** Tool name; `_EXAI-WS` / `-EXAI-WS` suffixes accepted. */
  tool: string;
  arguments: unknown;
  traceId?: string;
  /** Explicit idempotency key (daemon DUPLICATE detection happens above the executor). */
  callKey?: string;
  sessionId?: string;
  /** The caller's remaining budget, ms (the shim sends its own). */
  callerBudgetMs?: number;
  /** A ceiling of the layer serving the call (daemon: EXAI_WS_CALL_TIMEOUT). */
  ceiling?: { layer: TimeoutLayer; ms: number };
  /** Client cancellation / disconnect. */
  signal?: AbortSignal;
  onProgress?: (event: ProgressEvent) => void;
  /** Filesystem roots offered by the MCP client. */
  roots?: readonly string[];
  /** Retry OVER_CAPACITY inside the deadline (in-process server: yes; daemon: no, the shim does). */
  retryOverCapacity?: boolean;
}

export interface CallSummary {
  event: "CALL SUMMARY";
  tool: string;
  trace_id: string;
  call_key_hash: string;
  model?: string;
  /** The model's provider, else the first provider the call sent a request to. */
  provider?: string;
  /** Provider endpoints the call requested ("glm POST /web_search"), at most 10. */
  endpoints?: string[];
  /** HTTP attempts sent to providers (retries included). */
  attempts: number;
  duration_ms: number;
  queue_ms: number;
  budget_ms: number;
  layer: TimeoutLayer;
  outcome: "success" | "error";
  error_code?: string;
  coalesced: boolean;
  usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
  session?: string;
}

export interface CallOutcome {
  ok: boolean;
  /** Success: the tool's JSON result. */
  result?: Record<string, unknown>;
  /** Failure: the error payload (SPEC §6.7) with trace_id. */
  error?: ErrorPayload;
  traceId: string;
  /** The budget the call ran under, ms. */
  budgetMs: number;
  summary: CallSummary;
}

export interface ToolListing {
  name: string;
  definition: ToolDefinition;
}

export interface Executor {
  /** Resolves a tool name (suffixes stripped); undefined when not enabled. */
  findTool(name: string): ToolDefinition | undefined;
  tools(): readonly ToolDefinition[];
  /** Runs one call. Never throws. */
  call(request: CallRequest): Promise<CallOutcome>;
  /** The budget a call of `tool` would get before caller limits, ms. */
  budgetFor(tool: ToolDefinition): number;
  inflight(): number;
  /** Subscribes to finished calls (metrics). Returns an unsubscribe function. */
  onSummary(listener: (summary: CallSummary) => void): () => void;
  /** Aborts every call in flight (shutdown). */
  abortAll(reason: ExaiError): void;
  /** Resolves when no call is in flight (graceful shutdown), or after `timeoutMs`. */
  drain(timeoutMs: number): Promise<void>;
}

export interface ExecutorDependencies {
  services: Services;
  /** The configured providers: reached by tools only through their context's provider path. */
  providers: Providers;
  tools: readonly ToolDefinition[];
  admission: Admission;
  coalescer: Coalescer;
  /** Tools whose identical calls must not share an execution. */
  coalesceDisabled: ReadonlySet<string>;
  random?: () => number;
  /** Removes configured keys and tokens from every result and error that leaves (default: none). */
  redactor?: Redactor;
}
