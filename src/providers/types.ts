/**
 * The provider layer's public shapes: chat requests and results, the per-call context, the
 * Provider interface every adapter implements, and the dialect hooks (SPEC §5, §6.2).
 */
import type { ProviderName } from "../config/load.js";
import type { TimeoutConfig } from "../config/timeouts.js";
import type { TimeoutLayer } from "../base/errors.js";
import type { AttemptRecord, RetryPolicy } from "../timing/retry.js";
import type { ProviderErrorClass, ProviderErrorInfo } from "./error-classification.js";
import type { ModelInfo } from "./registry.js";

export type ThinkingMode = "minimal" | "low" | "medium" | "high" | "max";
export const THINKING_MODES: readonly ThinkingMode[] = ["minimal", "low", "medium", "high", "max"];

export type ContentPart = { type: "text"; text: string } | { type: "image_url"; image_url: { url: string } };

export interface ToolCall {
  id: string;
  type: string;
  function: { name: string; arguments: string };
}

export interface ChatMessage {
  role: "system" | "user" | "assistant" | "tool";
  content: string | ContentPart[] | null;
  name?: string;
  tool_call_id?: string;
  tool_calls?: ToolCall[];
}

export interface ChatRequest {
  model: ModelInfo;
  messages: ChatMessage[];
  temperature?: number;
  /** Output cap, tokens (sent as `max_tokens`, which GLM and Kimi both accept). */
  maxTokens?: number;
  thinkingMode?: ThinkingMode;
  /** Pass-through tool declarations (function tools, builtin functions). */
  tools?: unknown[];
  toolChoice?: unknown;
  /** Ask the provider to search the web (GLM web_search tool / Kimi $web_search loop). */
  webSearch?: boolean;
  /** Per-attempt first-chunk timeout override, ms (web search attempts use KIMI_WEB_SEARCH_TIMEOUT_SECS). */
  attemptTimeoutMs?: number;
  /** Provider-specific body fields, merged last. */
  extraBody?: Record<string, unknown>;
  /** Return the provider's response headers in `ChatResult.headers` (kimi_capture_headers). */
  captureHeaders?: boolean;
}

export interface TokenUsage {
  promptTokens: number;
  completionTokens: number;
  totalTokens: number;
}

export interface ChatResult {
  content: string;
  /** Reasoning deltas received (≈ tokens: these providers stream about one token per delta). */
  reasoningTokens: number;
  finishReason: string;
  toolCalls: ToolCall[];
  usage: TokenUsage;
  model: string;
  provider: ProviderName;
  attempts: AttemptRecord[];
  requestId?: string;
  webSearch?: unknown[];
  /** Rounds of a provider-side tool loop ($web_search). */
  rounds?: number;
  /**
   * Response headers of the (last) successful attempt, lower-case names, when the request set
   * `captureHeaders`. Cookies and credentials are never included.
   */
  headers?: Record<string, string>;
}

/** What a provider call needs from the call it serves. Times are ms on the monotonic clock. */
export interface ProviderCallContext {
  signal: AbortSignal;
  deadlineAt: number;
  /** The budget and layer that set the deadline, for messages ("9.1 s of the 45 s tool budget left"). */
  budgetMs?: number;
  budgetLayer?: TimeoutLayer;
  traceId: string;
  onProgress?: (message: string) => void;
}

export interface Provider {
  readonly name: ProviderName;
  readonly label: string;
  readonly baseUrl: string;
  /**
   * One chat completion with retries inside the deadline.
   * @throws ExaiError TIMEOUT (layer first_chunk / stream_idle / connect / tool…), RATE_LIMITED,
   *   PROVIDER_ERROR (listing every attempt), MODEL_NOT_FOUND, CANCELLED.
   */
  chat(request: ChatRequest, context: ProviderCallContext): Promise<ChatResult>;
  /**
   * The chat-completions JSON body `chat` would send for `request` (first round), without any
   * network access — the same function builds both, so the preview cannot drift from the real body.
   */
  previewBody(request: ChatRequest): Record<string, unknown>;
  /**
   * A JSON request to another endpoint of the provider (files, web search), with the same
   * per-attempt timeouts and retries. `path` is relative to the base URL ("/files").
   * Resolves to the parsed body and the attempts it took.
   * @throws ExaiError as `chat` (the attempts in `details.attempts`).
   */
  requestJson<T = unknown>(
    path: string,
    init: JsonRequestInit,
    context: ProviderCallContext,
  ): Promise<{ value: T; attempts: AttemptRecord[] }>;
  /** Closes the connection pool. */
  close(): Promise<void>;
}

export interface JsonRequestInit {
  method: "GET" | "POST" | "DELETE";
  json?: unknown;
  form?: { fields: Record<string, string>; file?: { name: string; content: Buffer | string; type?: string } };
  /** Retry this request on retryable failures (default: true for GET/DELETE, false for POST). */
  retry?: boolean;
  /**
   * "text": return the body as a string, unparsed (file contents, whose format the providers do
   * not pin down). Default "json": parse it, and fail with PROVIDER_ERROR when a 2xx is not JSON.
   */
  responseType?: "json" | "text";
}

/** Dialect hooks: how one provider differs from plain OpenAI. */
export interface Dialect {
  label: string;
  /** Adds provider fields (thinking, web search tool…) to the request body. */
  shapeBody(request: ChatRequest, body: Record<string, unknown>): void;
  /** Extra headers per attempt. */
  headers?(context: ProviderCallContext, idempotencyKey: string): Record<string, string>;
  /**
   * Classifies a provider error (an HTTP error body or an error event inside a 200 stream), parsed
   * into {message, code, type}: the provider's own business codes (Z.ai 1302 rate limit, Moonshot
   * exceeded_current_quota_error). Undefined = the shared OpenAI-style rules decide.
   */
  classifyError?(error: ProviderErrorInfo, status: number | undefined): ProviderErrorClass | undefined;
  /** Environment variable holding the key, for 401 messages. */
  keyVariable: string;
  timeoutVariable: string;
}

export interface ProviderDependencies {
  timeouts: TimeoutConfig;
  retry: RetryPolicy;
  /** Output bounds (SPEC §3 "limits"); defaults as documented on each field. */
  limits?: ProviderLimits;
  /** Removes configured secrets from text that leaves exai (provider error bodies); default: none. */
  redact?: (text: string) => string;
}

export interface ProviderLimits {
  /**
   * Most characters (answer + reasoning + tool-call arguments) one streamed response may carry
   * (EXAI_MAX_STREAM_CHARS); also the most bytes of a non-streamed body. Default: STREAM_CHARS_PER_TOKEN ×
   * the model's max output tokens for a chat stream, `responseBytes` for other bodies.
   */
  streamChars?: number;
  /** Most bytes of a non-streamed response body when `streamChars` is unset; default 32 MiB. */
  responseBytes?: number;
}
