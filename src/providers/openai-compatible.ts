/**
 * The shared OpenAI-compatible provider base (SPEC §5, §6.2, §6.3). GLM, Kimi and custom endpoints
 * are small dialects over it.
 *
 * Why we do not trust the SDK's timeout: the openai SDK's `timeout` stops counting once headers
 * arrive and it retries on its own, honouring Retry-After up to 60 s (REFERENCE.md). So its retries
 * are off (`maxRetries: 0`) and each attempt here runs under named timers of our own:
 *   connect ≤ EX_CONNECT_TIMEOUT_SECS (undici), first chunk ≤ provider timeout,
 *   silence between chunks ≤ EX_STREAM_IDLE_TIMEOUT_SECS, and the call's deadline over everything.
 * Requests always stream, so the idle timer can see a stalled stream.
 */
import { randomUUID } from "node:crypto";
import type OpenAI from "openai";
import type { Agent } from "undici";
import type { ProviderName, ProviderSettings } from "../config/load.js";
import type { TimeoutConfig } from "../config/timeouts.js";
import { ExaiError, formatSeconds, type TimeoutLayer } from "../base/errors.js";
import { abortReason, now } from "../timing/deadline.js";
import {
  parseRetryAfterMs,
  RETRYABLE_STATUSES,
  withRetries,
  type AttemptRecord,
  type RetryPolicy,
} from "../timing/retry.js";
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
  /** Reads a provider-specific rate-limit body: quota exhaustion is not retryable. */
  isQuotaError?(body: unknown): boolean;
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

/** The derived stream cap: characters per max-output token (≈ 4 per token, with a 2× margin). */
export const STREAM_CHARS_PER_TOKEN = 8;
const DEFAULT_RESPONSE_BYTES = 32 * 1024 * 1024;

/** The cap on one streamed chat response, characters, and how it was set (for messages). */
export function streamCapFor(
  model: ModelInfo,
  limits: ProviderLimits | undefined,
): { chars: number; how: string } {
  if (limits?.streamChars !== undefined) return { chars: limits.streamChars, how: "EXAI_MAX_STREAM_CHARS" };
  return {
    chars: STREAM_CHARS_PER_TOKEN * model.maxOutput,
    how: `${STREAM_CHARS_PER_TOKEN} × the model's max output of ${model.maxOutput.toLocaleString("en-US")} tokens`,
  };
}

/**
 * Maps exai's thinking modes to the provider switch (SPEC §5): minimal → off; low/medium/high →
 * `reasoning_effort` where the model supports it (else thinking on); max → high.
 */
export function thinkingFields(model: ModelInfo, mode: ThinkingMode | undefined): Record<string, unknown> {
  if (model.thinking === "none" || mode === undefined) return {};
  if (mode === "minimal") return { thinking: { type: "disabled" } };
  const effort = mode === "max" ? "high" : mode;
  if (model.thinking === "effort") return { thinking: { type: "enabled" }, reasoning_effort: effort };
  return { thinking: { type: "enabled" } };
}

/**
 * Creates a provider over the OpenAI-compatible chat API.
 * One undici Agent (keep-alive pool) per provider, sized by *_MAX_CONNECTIONS.
 */
export function createOpenAICompatibleProvider(
  settings: ProviderSettings,
  dialect: Dialect,
  dependencies: ProviderDependencies,
): Provider {
  const { timeouts } = dependencies;
  const redact = dependencies.redact ?? ((text: string) => text);
  // undici pools sockets per origin up to `connections` and keeps idle ones for keepAliveTimeout;
  // it has no separate idle-socket count, so *_MAX_KEEPALIVE_CONNECTIONS only bounds validation.
  // The openai SDK and undici (~260 modules, ~30 MB) are loaded, and the pool and client built,
  // on this provider's first request: a process that makes none (exai stdio answering
  // initialize and tools/list, an idle daemon) never pays for them.
  let sdk: ProviderSdk | undefined;
  let loading: Promise<ProviderSdk> | undefined;
  const loadSdk = (): Promise<ProviderSdk> =>
    (loading ??= (async () => {
      const [{ default: OpenAIClient }, undici] = await Promise.all([import("openai"), import("undici")]);
      const agent = new undici.Agent({
        connections: settings.maxConnections,
        keepAliveTimeout: 30_000,
        connect: { timeout: timeouts.connectMs },
        // Ceilings behind our own named timers (which fire first and say which layer ran out).
        headersTimeout: timeouts.httpMs + 1000,
        bodyTimeout: timeouts.streamIdleMs + 1000,
      });
      const fetchWithPool = (async (url: string, init: Record<string, unknown>) => {
        const { [LINE_GUARD]: guard, ...rest } = init as Record<string, unknown> & {
          [LINE_GUARD]?: LineGuard;
        };
        const response = await undici.fetch(url, { ...rest, dispatcher: agent } as never);
        return guard ? guardLines(response as unknown as Response, guard) : response;
      }) as unknown as typeof fetch;
      const client = new OpenAIClient({
        apiKey: settings.apiKey,
        baseURL: settings.baseUrl,
        maxRetries: 0,
        timeout: timeouts.httpMs,
        fetch: fetchWithPool,
        // Our own logger covers requests; the SDK's would format request details on every call.
        logLevel: "off",
      });
      sdk = { OpenAI: OpenAIClient, client, agent, undici };
      return sdk;
    })());

  const attemptBudgetMs = (request: { attemptTimeoutMs?: number }) =>
    request.attemptTimeoutMs ?? settings.timeoutMs;

  /** Classifies whatever an attempt threw into an ExaiError with `retryable` set. */
  const classify = (
    error: unknown,
    attemptTimeout: ExaiError | undefined,
    context: ProviderCallContext,
  ): ExaiError => {
    if (attemptTimeout) return attemptTimeout;
    if (context.signal.aborted) return abortReason(context.signal);
    if (ExaiError.is(error)) return error;
    // SDK errors exist only once the SDK is loaded (the first attempt loads it).
    const api = sdk?.OpenAI;
    if (api && error instanceof api.APIError && error.status !== undefined) {
      return httpError(error.status, error.error ?? error.message, error.headers, dialect, settings, redact);
    }
    const cause = error instanceof Error ? ((error as { cause?: unknown }).cause ?? error) : error;
    const code = (cause as { code?: string } | undefined)?.code;
    if (code === "UND_ERR_CONNECT_TIMEOUT") {
      return new ExaiError(
        "TIMEOUT",
        `${dialect.label}: connecting to ${settings.baseUrl} timed out after ${formatSeconds(timeouts.connectMs / 1000)}; check the network or ${dialect.label.toUpperCase()}_API_URL`,
        { retryable: true, cause: error, details: { layer: "connect", budget_s: timeouts.connectMs / 1000 } },
      );
    }
    if (code === "UND_ERR_HEADERS_TIMEOUT" || (api && error instanceof api.APIConnectionTimeoutError)) {
      return new ExaiError(
        "TIMEOUT",
        `${dialect.label}: no response headers within the HTTP ceiling of ${formatSeconds(timeouts.httpMs / 1000)} (EX_HTTP_TIMEOUT_SECONDS)`,
        { retryable: true, cause: error, details: { layer: "http", budget_s: timeouts.httpMs / 1000 } },
      );
    }
    if (api && error instanceof api.APIError && error.status === undefined && error.error !== undefined) {
      return streamError(error.error, dialect, settings, error, redact);
    }
    if (api && error instanceof api.APIConnectionError) {
      const detail = redact((cause as Error | undefined)?.message ?? "connection failed");
      return new ExaiError(
        "PROVIDER_ERROR",
        `${dialect.label}: connection to ${settings.baseUrl} failed (${code ?? detail}); check that the endpoint is reachable`,
        { retryable: true, cause: error, details: { provider: settings.name } },
      );
    }
    const message = redact(error instanceof Error ? error.message : String(error));
    return new ExaiError(
      "PROVIDER_ERROR",
      `${dialect.label}: the response could not be read (${message}); the provider sent malformed data`,
      { retryable: true, cause: error, details: { provider: settings.name } },
    );
  };

  /** Arms the named per-attempt timers; returns the controls. */
  const attemptTimers = (
    firstChunkMs: number,
    attemptNumber: number,
    total: number,
    context: ProviderCallContext,
  ) => {
    const controller = new AbortController();
    let fired: ExaiError | undefined;
    let timer: NodeJS.Timeout | undefined;
    const started = now();
    const arm = (layer: TimeoutLayer, ms: number) => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        const left = Math.max(0, context.deadlineAt - now());
        const budget =
          context.budgetMs !== undefined
            ? `; ${formatSeconds(left / 1000)} of the ${formatSeconds(context.budgetMs / 1000)} ${context.budgetLayer ?? "tool"} budget left`
            : "";
        const waiting =
          layer === "first_chunk" ? "waiting for the first chunk" : "waiting for the next stream chunk";
        const fix =
          layer === "first_chunk"
            ? `raise ${dialect.timeoutVariable} or use a faster model`
            : "the stream stalled; raise EX_STREAM_IDLE_TIMEOUT_SECS if the provider is known to pause";
        fired = new ExaiError(
          "TIMEOUT",
          `${dialect.label} attempt ${attemptNumber}/${total} timed out after ${formatSeconds((now() - started) / 1000)} ${waiting} (${layer} budget ${formatSeconds(ms / 1000)})${budget}; ${fix}`,
          { retryable: true, details: { layer, budget_s: ms / 1000, provider: settings.name } },
        );
        controller.abort(fired);
      }, ms);
      timer.unref();
    };
    arm("first_chunk", firstChunkMs);
    return {
      signal: AbortSignal.any([context.signal, controller.signal]),
      activity: () => arm("stream_idle", timeouts.streamIdleMs),
      fired: () => fired,
      clear: () => clearTimeout(timer),
      /** Ends the attempt now with `reason` (a bound was passed): aborts its HTTP request. */
      stop: (reason: ExaiError): ExaiError => {
        clearTimeout(timer);
        fired ??= reason;
        controller.abort(reason);
        return reason;
      },
    };
  };

  /**
   * Headers of every attempt. `idempotencyKey` is made once per logical request (one chat
   * completion, one upload…) and reused only by that request's retries: a provider that honours it
   * must never answer a different request with a cached response.
   */
  const baseHeaders = (context: ProviderCallContext, idempotencyKey: string): Record<string, string> => ({
    "X-Request-Id": context.traceId,
    ...(dialect.headers?.(context, idempotencyKey) ?? {}),
  });

  const chatOnce = async (
    request: ChatRequest,
    body: Record<string, unknown>,
    attemptNumber: number,
    total: number,
    context: ProviderCallContext,
    idempotencyKey: string,
  ): Promise<Omit<ChatResult, "attempts">> => {
    // Loaded before the attempt's timers start: they bound the provider, not our first import.
    const { client } = await loadSdk();
    const timers = attemptTimers(attemptBudgetMs(request), attemptNumber, total, context);
    const cap = streamCapFor(request.model, dependencies.limits);
    let content = "";
    let reasoningTokens = 0;
    // Characters received so far: answer + reasoning + tool-call arguments.
    let received = 0;
    let finishReason = "";
    let requestId: string | undefined;
    let usage: TokenUsage = { promptTokens: 0, completionTokens: 0, totalTokens: 0 };
    let webSearch: unknown[] | undefined;
    const toolCalls: ToolCall[] = [];
    let headers: Record<string, string> | undefined;
    let lastProgress = 0;
    try {
      // The SDK buffers a stream line until its newline: one endless line would grow without a
      // parsed chunk to count, so raw lines are bounded too (a chunk's JSON, at most 6 bytes per
      // character of the cap when every character is \u-escaped).
      // Any other body (an error, a provider that ignores `stream`) is bounded as a whole.
      const guard: LineGuard = {
        maxLineBytes: cap.chars * 6 + 64 * 1024,
        maxBodyBytes: Math.min(cap.chars * 6 + 64 * 1024, MAX_ERROR_BODY_BYTES),
        overflow: (bytes, what) =>
          timers.stop(
            new ExaiError(
              "PROVIDER_ERROR",
              `${dialect.label} ${request.model.id}: ${what === "line" ? "a stream line" : "a response that is not an event stream"} passed ${bytes.toLocaleString("en-US")} bytes without ending (more than the cap of ${cap.chars.toLocaleString("en-US")} characters could hold; ${cap.how}) and was aborted; raise EXAI_MAX_STREAM_CHARS if this model legitimately answers at this length`,
              {
                retryable: false,
                details: {
                  provider: settings.name,
                  model: request.model.id,
                  cap_chars: cap.chars,
                  variable: "EXAI_MAX_STREAM_CHARS",
                },
              },
            ),
          ),
      };
      const pending = client.chat.completions.create(body as never, {
        signal: timers.signal,
        maxRetries: 0,
        timeout: timeouts.httpMs,
        headers: baseHeaders(context, idempotencyKey),
        // Spread by the SDK into the fetch init, where fetchWithPool takes it out again.
        fetchOptions: { [LINE_GUARD]: guard } as never,
      });
      let stream: unknown;
      if (request.captureHeaders) {
        // withResponse() hands back the same stream plus the raw Response (for its headers).
        const { data, response } = await pending.withResponse();
        headers = safeHeaders(response.headers);
        stream = data;
      } else {
        stream = await pending;
      }
      for await (const raw of stream as unknown as AsyncIterable<Record<string, unknown>>) {
        timers.activity();
        const chunk = raw as StreamChunk;
        requestId ??= chunk.request_id ?? chunk.id;
        if (Array.isArray(chunk.web_search)) webSearch = chunk.web_search;
        const choice = chunk.choices?.[0];
        const delta = choice?.delta;
        if (delta?.reasoning_content) {
          reasoningTokens++;
          received += delta.reasoning_content.length;
        }
        if (typeof delta?.content === "string") {
          content += delta.content;
          received += delta.content.length;
        }
        for (const call of delta?.tool_calls ?? []) {
          const index = call.index ?? toolCalls.length;
          const existing = (toolCalls[index] ??= {
            id: "",
            type: call.type ?? "function",
            function: { name: "", arguments: "" },
          });
          if (call.id) existing.id = call.id;
          if (call.type) existing.type = call.type;
          if (call.function?.name) existing.function.name += call.function.name;
          if (call.function?.arguments) {
            existing.function.arguments += call.function.arguments;
            received += call.function.arguments.length;
          }
          received += call.function?.name?.length ?? 0;
        }
        if (received > cap.chars) {
          // Not retryable: the same request would stream without end again and only burn the deadline.
          throw timers.stop(
            new ExaiError(
              "PROVIDER_ERROR",
              `${dialect.label} ${request.model.id}: the streamed response passed the cap of ${cap.chars.toLocaleString("en-US")} characters (answer + reasoning; ${cap.how}) and was aborted; raise EXAI_MAX_STREAM_CHARS if this model legitimately answers at this length`,
              {
                retryable: false,
                details: {
                  provider: settings.name,
                  model: request.model.id,
                  cap_chars: cap.chars,
                  variable: "EXAI_MAX_STREAM_CHARS",
                },
              },
            ),
          );
        }
        if (choice?.finish_reason) finishReason = choice.finish_reason;
        const rawUsage = chunk.usage ?? choice?.usage;
        if (rawUsage) {
          usage = {
            promptTokens: rawUsage.prompt_tokens ?? 0,
            completionTokens: rawUsage.completion_tokens ?? 0,
            totalTokens:
              rawUsage.total_tokens ?? (rawUsage.prompt_tokens ?? 0) + (rawUsage.completion_tokens ?? 0),
          };
        }
        const t = now();
        if (context.onProgress && t - lastProgress > 250) {
          lastProgress = t;
          context.onProgress(
            reasoningTokens > 0 && content === ""
              ? `${dialect.label} ${request.model.id}: reasoning, ${reasoningTokens.toLocaleString("en-US")} tokens`
              : `${dialect.label} ${request.model.id}: streaming, ${content.length.toLocaleString("en-US")} chars`,
          );
        }
      }
      if (context.signal.aborted) throw abortReason(context.signal);
      if (finishReason === "") {
        throw new ExaiError(
          "PROVIDER_ERROR",
          `${dialect.label}: the stream ended without a finish_reason (truncated response)`,
          {
            retryable: true,
            details: { provider: settings.name },
          },
        );
      }
    } catch (error) {
      throw classify(error, timers.fired(), context);
    } finally {
      timers.clear();
    }
    return {
      content,
      reasoningTokens,
      finishReason,
      toolCalls: toolCalls.filter(Boolean),
      usage,
      model: request.model.id,
      provider: settings.name,
      ...(requestId ? { requestId } : {}),
      ...(webSearch ? { webSearch } : {}),
      ...(headers ? { headers } : {}),
    };
  };

  const buildBody = (request: ChatRequest): Record<string, unknown> => {
    const body: Record<string, unknown> = {
      model: request.model.id,
      messages: request.messages,
      stream: true,
    };
    if (request.model.temperature && request.temperature !== undefined) {
      const { min, max } = request.model.temperature;
      body.temperature = Math.min(max, Math.max(min, request.temperature));
    }
    if (request.maxTokens !== undefined)
      body.max_tokens = Math.min(request.maxTokens, request.model.maxOutput);
    if (request.tools && request.tools.length > 0) body.tools = [...request.tools];
    if (request.toolChoice !== undefined) body.tool_choice = request.toolChoice;
    dialect.shapeBody(request, body);
    Object.assign(body, request.extraBody ?? {});
    return body;
  };

  const retryOptions = (context: ProviderCallContext, label: string) => ({
    policy: dependencies.retry,
    deadlineAt: context.deadlineAt,
    signal: context.signal,
    label,
    onAttempt: (attempt: number, total: number) =>
      context.onProgress?.(`calling ${label} attempt ${attempt}/${total}`),
    onBackoff: (delay: number, failure: ExaiError) =>
      context.onProgress?.(`${label}: ${failure.code}, retrying in ${formatSeconds(delay / 1000)}`),
  });

  return {
    name: settings.name,
    label: dialect.label,
    baseUrl: settings.baseUrl,
    previewBody: (request) => buildBody(request),
    async chat(request, context) {
      const body = buildBody(request);
      const total = dependencies.retry.maxRetries + 1;
      const idempotencyKey = randomUUID();
      const { value, attempts } = await withRetries(
        (attempt) => chatOnce(request, body, attempt, total, context, idempotencyKey),
        retryOptions(context, `${dialect.label} ${request.model.id}`),
      );
      return { ...value, attempts };
    },
    async requestJson<T>(path: string, init: JsonRequestInit, context: ProviderCallContext) {
      const responseBytes =
        dependencies.limits?.streamChars ?? dependencies.limits?.responseBytes ?? DEFAULT_RESPONSE_BYTES;
      const retryable = init.retry ?? init.method !== "POST";
      const total = retryable ? dependencies.retry.maxRetries + 1 : 1;
      const idempotencyKey = randomUUID();
      return withRetries(
        async (attempt): Promise<T> => {
          // An upload's body takes time to send: its wait for the response is bounded by the
          // call's deadline rather than by the first-chunk timeout meant for chat completions.
          const waitMs = init.form
            ? Math.max(settings.timeoutMs, context.deadlineAt - now())
            : settings.timeoutMs;
          const { agent, undici } = await loadSdk();
          const timers = attemptTimers(waitMs, attempt, total, context);
          try {
            const headers: Record<string, string> = {
              Authorization: `Bearer ${settings.apiKey}`,
              ...baseHeaders(context, idempotencyKey),
            };
            let body: unknown;
            if (init.json !== undefined) {
              headers["Content-Type"] = "application/json";
              body = JSON.stringify(init.json);
            } else if (init.form) {
              const form = new undici.FormData();
              for (const [key, value] of Object.entries(init.form.fields)) form.append(key, value);
              if (init.form.file) {
                const { name, content, type } = init.form.file;
                form.append("file", new Blob([content], { type: type ?? "application/octet-stream" }), name);
              }
              body = form;
            }
            const response = await undici.fetch(`${settings.baseUrl}${path}`, {
              method: init.method,
              headers,
              body: body as never,
              signal: timers.signal,
              dispatcher: agent,
            });
            timers.activity();
            const text = await readBoundedText(response, responseBytes, () =>
              timers.stop(
                new ExaiError(
                  "PROVIDER_ERROR",
                  `${dialect.label} ${init.method} ${path}: the response body passed the cap of ${responseBytes.toLocaleString("en-US")} bytes and was aborted; raise EXAI_MAX_STREAM_CHARS if the provider legitimately sends more`,
                  {
                    retryable: false,
                    details: {
                      provider: settings.name,
                      cap_bytes: responseBytes,
                      variable: "EXAI_MAX_STREAM_CHARS",
                    },
                  },
                ),
              ),
            );
            if (init.responseType === "text" && response.ok) return text as T;
            let parsed: unknown = text;
            try {
              parsed = text === "" ? {} : JSON.parse(text);
            } catch {
              // A non-JSON body: an error below reports it as text; a 2xx is malformed.
              if (response.ok) {
                throw new ExaiError(
                  "PROVIDER_ERROR",
                  `${dialect.label} ${init.method} ${path}: response is not JSON`,
                  {
                    retryable: true,
                  },
                );
              }
            }
            if (!response.ok)
              throw httpError(response.status, parsed, response.headers, dialect, settings, redact);
            return parsed as T;
          } catch (error) {
            throw classify(error, timers.fired(), context);
          } finally {
            timers.clear();
          }
        },
        {
          ...retryOptions(context, `${dialect.label} ${init.method} ${path}`),
          policy: { ...dependencies.retry, maxRetries: total - 1 },
        },
      );
    },
    async close() {
      // A provider that never made a request has no pool to close.
      const loaded = await loading?.catch(() => undefined);
      await loaded?.agent.close();
    },
  };
}

/** A provider's SDK client and connection pool, built on its first request. */
interface ProviderSdk {
  OpenAI: typeof OpenAI;
  client: OpenAI;
  agent: Agent;
  undici: typeof import("undici");
}

/** The fetch-init key carrying a LineGuard from a chat attempt to fetchWithPool. */
const LINE_GUARD = "exaiLineGuard";

/** Most bytes read of a chat response that is not a 2xx event stream (errors are shown 300 characters). */
const MAX_ERROR_BODY_BYTES = 1024 * 1024;

interface LineGuard {
  /** Longest line of a 2xx event stream, bytes. */
  maxLineBytes: number;
  /** Largest body of any other response, bytes. */
  maxBodyBytes: number;
  /** Stops the attempt; returns the error the stream fails with. */
  overflow(bytes: number, what: "line" | "body"): ExaiError;
}

/**
 * The response with a bounded body: a 2xx event stream fails (via `guard.overflow`) as soon as
 * one line passes `guard.maxLineBytes`; any other body once it passes `guard.maxBodyBytes`.
 */
function guardLines(response: Response, guard: LineGuard): Response {
  if (!response.body) return response;
  const stream = response.ok && (response.headers.get("content-type") ?? "").includes("event-stream");
  let sinceNewline = 0;
  let total = 0;
  const body = response.body.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        if (stream) {
          const last = chunk.lastIndexOf(0x0a);
          sinceNewline = last >= 0 ? chunk.length - last - 1 : sinceNewline + chunk.length;
          if (sinceNewline > guard.maxLineBytes)
            return controller.error(guard.overflow(sinceNewline, "line"));
        } else {
          total += chunk.length;
          if (total > guard.maxBodyBytes) return controller.error(guard.overflow(total, "body"));
        }
        controller.enqueue(chunk);
      },
    }),
  );
  const guarded = new Response(body, {
    status: response.status,
    statusText: response.statusText,
    headers: response.headers,
  });
  // The SDK names the URL in its debug output and errors.
  Object.defineProperty(guarded, "url", { value: response.url });
  return guarded;
}

/** Header names never copied into a result: credentials and cookies. */
const HIDDEN_HEADERS = new Set(["authorization", "proxy-authorization", "cookie", "set-cookie"]);

/** Response headers as a plain object (lower-case names), without credentials or cookies. */
function safeHeaders(headers: { forEach(callback: (value: string, name: string) => void): void }) {
  const out: Record<string, string> = {};
  headers.forEach((value, name) => {
    if (!HIDDEN_HEADERS.has(name.toLowerCase())) out[name.toLowerCase()] = value;
  });
  return out;
}

interface StreamChunk {
  id?: string;
  request_id?: string;
  web_search?: unknown[];
  usage?: RawUsage;
  choices?: Array<{
    delta?: {
      content?: string | null;
      reasoning_content?: string | null;
      tool_calls?: Array<{
        index?: number;
        id?: string;
        type?: string;
        function?: { name?: string; arguments?: string };
      }>;
    };
    finish_reason?: string | null;
    usage?: RawUsage;
  }>;
}

interface RawUsage {
  prompt_tokens?: number;
  completion_tokens?: number;
  total_tokens?: number;
}

/**
 * An error event sent inside a 200 stream (`data: {"error": …}`; the openai SDK raises it as an
 * APIError without a status). Rate limits are retryable (Z.ai: business codes 1302/1303/1305/1312;
 * OpenAI style: type rate_limit*); server-side hiccups too; anything else (content filter 1301,
 * quota 1113, invalid request) is the provider's considered answer and is not retried.
 */
function streamError(
  body: unknown,
  dialect: Dialect,
  settings: ProviderSettings,
  cause: unknown,
  redact: (text: string) => string,
): ExaiError {
  const error = (body ?? {}) as { code?: unknown; type?: unknown; message?: unknown };
  const code = error.code === undefined || error.code === null ? "" : String(error.code);
  const type = typeof error.type === "string" ? error.type : "";
  const message = `${dialect.label}: the provider reported an error in the stream: ${redact(extractMessage({ error: body }))}`;
  const details = { provider: settings.name, provider_code: code || type || undefined };
  if (["1302", "1303", "1305", "1312"].includes(code) || /rate_limit/i.test(type)) {
    return new ExaiError("RATE_LIMITED", message, { retryable: true, cause, details });
  }
  const transient = /server_error|overloaded|internal/i.test(`${type} ${code}`);
  return new ExaiError("PROVIDER_ERROR", message, { retryable: transient, cause, details });
}

/** Maps an HTTP error status + body to an ExaiError (SPEC §6.2 retry set, §6.7 codes). */
function httpError(
  status: number,
  body: unknown,
  headers: { get(name: string): string | null } | undefined,
  dialect: Dialect,
  settings: ProviderSettings,
  redact: (text: string) => string,
): ExaiError {
  // Provider bodies may echo the request, key included (a 401 "invalid key sk-…").
  const detail = redact(extractMessage(body));
  const base = { details: { status, provider: settings.name } };
  if (status === 429) {
    if (dialect.isQuotaError?.(body)) {
      return new ExaiError(
        "RATE_LIMITED",
        `${dialect.label}: account quota exhausted (HTTP 429: ${detail}); top up the account or use another provider`,
        { ...base, retryable: false },
      );
    }
    const retryAfterMs = parseRetryAfterMs(headers);
    return new ExaiError(
      "RATE_LIMITED",
      `${dialect.label}: rate limited (HTTP 429: ${detail})${retryAfterMs !== undefined ? `; retry after ${formatSeconds(retryAfterMs / 1000)}` : ""}`,
      {
        ...base,
        retryable: true,
        ...(retryAfterMs !== undefined ? { retryAfterS: retryAfterMs / 1000 } : {}),
      },
    );
  }
  if (status === 401 || status === 403) {
    return new ExaiError(
      "PROVIDER_ERROR",
      `${dialect.label}: HTTP ${status} ${status === 401 ? "unauthorized" : "forbidden"} (${detail}); check ${dialect.keyVariable}`,
      { ...base, retryable: false },
    );
  }
  if (status === 404) {
    return new ExaiError(
      "MODEL_NOT_FOUND",
      `${dialect.label}: HTTP 404 (${detail}); the model or endpoint does not exist at ${settings.baseUrl}`,
      {
        ...base,
        retryable: false,
      },
    );
  }
  const retryAfterMs = parseRetryAfterMs(headers);
  return new ExaiError("PROVIDER_ERROR", `${dialect.label}: HTTP ${status} (${detail})`, {
    ...base,
    retryable: RETRYABLE_STATUSES.has(status),
    ...(retryAfterMs !== undefined && RETRYABLE_STATUSES.has(status)
      ? { retryAfterS: retryAfterMs / 1000 }
      : {}),
  });
}

/**
 * Reads a response body as UTF-8 text, at most `limitBytes` bytes; past that calls `overflow`
 * (which aborts the request and returns the error to throw) and throws its result.
 */
async function readBoundedText(
  response: { headers: { get(name: string): string | null }; body: ReadableStream<Uint8Array> | null },
  limitBytes: number,
  overflow: () => ExaiError,
): Promise<string> {
  const declared = Number(response.headers.get("content-length") ?? Number.NaN);
  if (Number.isFinite(declared) && declared > limitBytes) {
    await response.body?.cancel().catch(() => undefined);
    throw overflow();
  }
  if (!response.body) return "";
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > limitBytes) {
      await reader.cancel().catch(() => undefined);
      throw overflow();
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString("utf8");
}

function extractMessage(body: unknown): string {
  if (typeof body === "string") return body.slice(0, 300) || "no body";
  const error = (body as { error?: { message?: unknown; code?: unknown } } | undefined)?.error;
  const message = error?.message ?? (body as { message?: unknown } | undefined)?.message;
  const code = error?.code;
  const text = typeof message === "string" ? message : JSON.stringify(body ?? null).slice(0, 300);
  return code !== undefined && code !== null ? `${text} [${String(code)}]` : text;
}
