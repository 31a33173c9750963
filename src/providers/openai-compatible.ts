/**
 * The shared OpenAI-compatible provider base (SPEC §5, §6.2, §6.3). GLM, Kimi and custom endpoints
 * are small dialects over it. The parts live beside it: request building (request.ts), stream
 * reading (stream.ts), error classification (error-classification.ts), guarded body reading
 * (bodies.ts) and the per-attempt timers (attempt-timers.ts).
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
import type { ProviderSettings } from "../config/load.js";
import { ExaiError, formatSeconds } from "../base/errors.js";
import { abortReason, now } from "../timing/deadline.js";
import { withRetries } from "../timing/retry.js";
import { startAttemptTimers, type AttemptTimers } from "./attempt-timers.js";
import {
  guardLines,
  LINE_GUARD,
  MAX_ERROR_BODY_BYTES,
  readBoundedText,
  safeHeaders,
  type LineGuard,
} from "./bodies.js";
import { classifyAttemptError, httpError } from "./error-classification.js";
import { attemptHeaders, buildChatBody, endpointBody, streamCapFor } from "./request.js";
import { readChatStream } from "./stream.js";
import type {
  ChatRequest,
  ChatResult,
  Dialect,
  JsonRequestInit,
  Provider,
  ProviderCallContext,
  ProviderDependencies,
} from "./types.js";

const DEFAULT_RESPONSE_BYTES = 32 * 1024 * 1024;

/** A provider's SDK client and connection pool, built on its first request. */
interface ProviderSdk {
  OpenAI: typeof OpenAI;
  client: OpenAI;
  agent: Agent;
  undici: typeof import("undici");
}

/** What every attempt of one provider shares. */
interface ProviderScope {
  settings: ProviderSettings;
  dialect: Dialect;
  dependencies: ProviderDependencies;
  redact: (text: string) => string;
  loadSdk(): Promise<ProviderSdk>;
  /** The SDK once loaded (its error classes classify attempt failures). */
  loaded(): ProviderSdk | undefined;
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
  const scope: ProviderScope = {
    settings,
    dialect,
    dependencies,
    redact: dependencies.redact ?? ((text: string) => text),
    loadSdk,
    loaded: () => sdk,
  };

  return {
    name: settings.name,
    label: dialect.label,
    baseUrl: settings.baseUrl,
    previewBody: (request) => buildChatBody(dialect, request),
    async chat(request, context) {
      const body = buildChatBody(dialect, request);
      const total = dependencies.retry.maxRetries + 1;
      const idempotencyKey = randomUUID();
      const { value, attempts } = await withRetries(
        (attempt) => chatOnce(scope, { request, body, attempt, total, idempotencyKey }, context),
        retryOptions(scope, context, `${dialect.label} ${request.model.id}`),
      );
      return { ...value, attempts };
    },
    async requestJson<T>(path: string, init: JsonRequestInit, context: ProviderCallContext) {
      const retryable = init.retry ?? init.method !== "POST";
      const total = retryable ? dependencies.retry.maxRetries + 1 : 1;
      const idempotencyKey = randomUUID();
      return withRetries(
        (attempt) => requestOnce<T>(scope, { path, init, attempt, total, idempotencyKey }, context),
        {
          ...retryOptions(scope, context, `${dialect.label} ${init.method} ${path}`),
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

function retryOptions(scope: ProviderScope, context: ProviderCallContext, label: string) {
  return {
    policy: scope.dependencies.retry,
    deadlineAt: context.deadlineAt,
    signal: context.signal,
    label,
    onAttempt: (attempt: number, total: number) =>
      context.onProgress?.(`calling ${label} attempt ${attempt}/${total}`),
    onBackoff: (delay: number, failure: ExaiError) =>
      context.onProgress?.(`${label}: ${failure.code}, retrying in ${formatSeconds(delay / 1000)}`),
  };
}

function timersFor(
  scope: ProviderScope,
  firstChunkMs: number,
  attempt: number,
  total: number,
  context: ProviderCallContext,
): AttemptTimers {
  return startAttemptTimers(firstChunkMs, attempt, total, context, {
    label: scope.dialect.label,
    provider: scope.settings.name,
    timeoutVariable: scope.dialect.timeoutVariable,
    streamIdleMs: scope.dependencies.timeouts.streamIdleMs,
  });
}

function classify(scope: ProviderScope, error: unknown, timers: AttemptTimers, context: ProviderCallContext) {
  return classifyAttemptError(error, timers.fired(), context, {
    ...scope,
    timeouts: scope.dependencies.timeouts,
    api: scope.loaded()?.OpenAI,
  });
}

/** The guard bounding one chat attempt's raw body: stream lines, or a whole non-stream body. */
function chatGuard(scope: ProviderScope, request: ChatRequest, timers: AttemptTimers): LineGuard {
  const cap = streamCapFor(request.model, scope.dependencies.limits);
  // The SDK buffers a stream line until its newline: one endless line would grow without a
  // parsed chunk to count, so raw lines are bounded too (a chunk's JSON, at most 6 bytes per
  // character of the cap when every character is \u-escaped).
  // Any other body (an error, a provider that ignores `stream`) is bounded as a whole.
  return {
    maxLineBytes: cap.chars * 6 + 64 * 1024,
    maxBodyBytes: Math.min(cap.chars * 6 + 64 * 1024, MAX_ERROR_BODY_BYTES),
    overflow: (bytes, what) =>
      timers.stop(
        new ExaiError(
          "PROVIDER_ERROR",
          `${scope.dialect.label} ${request.model.id}: ${what === "line" ? "a stream line" : "a response that is not an event stream"} passed ${bytes.toLocaleString("en-US")} bytes without ending (more than the cap of ${cap.chars.toLocaleString("en-US")} characters could hold; ${cap.how}) and was aborted; raise EXAI_MAX_STREAM_CHARS if this model legitimately answers at this length`,
          {
            retryable: false,
            details: {
              provider: scope.settings.name,
              model: request.model.id,
              cap_chars: cap.chars,
              variable: "EXAI_MAX_STREAM_CHARS",
            },
          },
        ),
      ),
  };
}

interface ChatAttempt {
  request: ChatRequest;
  body: Record<string, unknown>;
  attempt: number;
  total: number;
  idempotencyKey: string;
}

/** One streamed chat attempt under its own timers. */
async function chatOnce(
  scope: ProviderScope,
  { request, body, attempt, total, idempotencyKey }: ChatAttempt,
  context: ProviderCallContext,
): Promise<Omit<ChatResult, "attempts">> {
  const { dialect, settings } = scope;
  // Loaded before the attempt's timers start: they bound the provider, not our first import.
  const { client } = await scope.loadSdk();
  const timers = timersFor(scope, request.attemptTimeoutMs ?? settings.timeoutMs, attempt, total, context);
  try {
    const pending = client.chat.completions.create(body as never, {
      signal: timers.signal,
      maxRetries: 0,
      timeout: scope.dependencies.timeouts.httpMs,
      headers: attemptHeaders(dialect, context, idempotencyKey),
      // Spread by the SDK into the fetch init, where fetchWithPool takes it out again.
      fetchOptions: { [LINE_GUARD]: chatGuard(scope, request, timers) } as never,
    });
    let stream: unknown;
    let headers: Record<string, string> | undefined;
    if (request.captureHeaders) {
      // withResponse() hands back the same stream plus the raw Response (for its headers).
      const { data, response } = await pending.withResponse();
      headers = safeHeaders(response.headers);
      stream = data;
    } else {
      stream = await pending;
    }
    const state = await readChatStream(stream as AsyncIterable<unknown>, {
      label: `${dialect.label} ${request.model.id}`,
      provider: settings.name,
      model: request.model.id,
      timers,
      cap: streamCapFor(request.model, scope.dependencies.limits),
      onProgress: context.onProgress,
    });
    if (context.signal.aborted) throw abortReason(context.signal);
    if (state.finishReason === "") {
      throw new ExaiError(
        "PROVIDER_ERROR",
        `${dialect.label}: the stream ended without a finish_reason (truncated response)`,
        { retryable: true, details: { provider: settings.name } },
      );
    }
    return {
      content: state.content,
      reasoningTokens: state.reasoningTokens,
      finishReason: state.finishReason,
      toolCalls: state.toolCalls.filter(Boolean),
      usage: state.usage,
      model: request.model.id,
      provider: settings.name,
      ...(state.requestId ? { requestId: state.requestId } : {}),
      ...(state.webSearch ? { webSearch: state.webSearch } : {}),
      ...(headers ? { headers } : {}),
    };
  } catch (error) {
    throw classify(scope, error, timers, context);
  } finally {
    timers.clear();
  }
}

interface EndpointAttempt {
  path: string;
  init: JsonRequestInit;
  attempt: number;
  total: number;
  idempotencyKey: string;
}

/** One attempt of a non-chat request (files, web search, /models) under its own timers. */
async function requestOnce<T>(
  scope: ProviderScope,
  { path, init, attempt, total, idempotencyKey }: EndpointAttempt,
  context: ProviderCallContext,
): Promise<T> {
  const { dialect, settings, dependencies } = scope;
  const responseBytes =
    dependencies.limits?.streamChars ?? dependencies.limits?.responseBytes ?? DEFAULT_RESPONSE_BYTES;
  // An upload's body takes time to send: its wait for the response is bounded by the
  // call's deadline rather than by the first-chunk timeout meant for chat completions.
  const waitMs = init.form ? Math.max(settings.timeoutMs, context.deadlineAt - now()) : settings.timeoutMs;
  const { agent, undici } = await scope.loadSdk();
  const timers = timersFor(scope, waitMs, attempt, total, context);
  try {
    const headers: Record<string, string> = {
      Authorization: `Bearer ${settings.apiKey}`,
      ...attemptHeaders(dialect, context, idempotencyKey),
    };
    const body = endpointBody(init, headers, undici.FormData);
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
            details: { provider: settings.name, cap_bytes: responseBytes, variable: "EXAI_MAX_STREAM_CHARS" },
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
    if (!response.ok) throw httpError(response.status, parsed, response.headers, scope);
    return parsed as T;
  } catch (error) {
    throw classify(scope, error, timers, context);
  } finally {
    timers.clear();
  }
}
