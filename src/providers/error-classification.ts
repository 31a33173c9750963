/**
 * Error classification of provider attempts (SPEC §6.2 retry set, §6.7 codes). Provider error
 * bodies — HTTP error responses and error events inside a 200 stream — are parsed with a zod
 * schema into {message, code, type}; each adapter's `classifyError` hook names its own business
 * codes (Z.ai's in glm.ts, Moonshot's in kimi.ts), and the shared OpenAI-style rules decide the rest.
 */
import type OpenAI from "openai";
import { z } from "zod";
import type { ProviderSettings } from "../config/load.js";
import type { TimeoutConfig } from "../config/timeouts.js";
import { ExaiError, formatSeconds } from "../base/errors.js";
import { abortReason } from "../timing/deadline.js";
import { parseRetryAfterMs, RETRYABLE_STATUSES } from "../timing/retry.js";
import type { Dialect, ProviderCallContext } from "./types.js";

/** A provider error as the adapters see it: every field optional, codes as strings. */
export interface ProviderErrorInfo {
  message?: string;
  /** Business or OpenAI code ("1302", "rate_limit_exceeded"); numbers are stringified. */
  code?: string;
  type?: string;
}

/**
 * What an adapter says about an error: `rate_limited` (retryable RATE_LIMITED), `quota` (RATE_LIMITED,
 * not retryable: the account is out of credit), `transient` (retryable PROVIDER_ERROR), `final`
 * (the provider's considered answer: not retried).
 */
export type ProviderErrorClass = "rate_limited" | "quota" | "transient" | "final";

const code = z.union([z.string(), z.number()]).nullish();
const errorObject = z.looseObject({ message: z.unknown().optional(), code, type: z.string().nullish() });
/** `{error: {message, code, type}}` (OpenAI, Moonshot, Z.ai) or a bare `{message, code}`. */
const errorBodySchema = z.union([z.looseObject({ error: errorObject }), errorObject]);

/** Parses an error body (a string, JSON or anything) into ProviderErrorInfo; never throws. */
export function parseProviderError(body: unknown): ProviderErrorInfo {
  if (typeof body === "string") return body ? { message: body } : {};
  const parsed = errorBodySchema.safeParse(body);
  if (!parsed.success) return {};
  const data = parsed.data as z.infer<typeof errorObject> & { error?: z.infer<typeof errorObject> };
  const error = data.error ?? data;
  const message = typeof error.message === "string" ? error.message : undefined;
  return {
    ...(message !== undefined ? { message } : {}),
    ...(error.code !== undefined && error.code !== null ? { code: String(error.code) } : {}),
    ...(error.type ? { type: error.type } : {}),
  };
}

/** The OpenAI-style rules shared by every provider. */
function sharedClass(error: ProviderErrorInfo): ProviderErrorClass {
  const text = `${error.type ?? ""} ${error.code ?? ""}`;
  if (/rate_limit/i.test(text)) return "rate_limited";
  if (/insufficient_quota/i.test(text)) return "quota";
  if (/server_error|overloaded|internal/i.test(text)) return "transient";
  return "final";
}

/** A body's message for error texts: at most 300 characters, with its code. */
function extractMessage(body: unknown): string {
  if (typeof body === "string") return body.slice(0, 300) || "no body";
  const error = parseProviderError(body);
  const text = error.message ?? JSON.stringify(body ?? null).slice(0, 300);
  return error.code !== undefined ? `${text} [${error.code}]` : text;
}

interface ClassifyScope {
  dialect: Dialect;
  settings: ProviderSettings;
  redact: (text: string) => string;
}

/**
 * An error event sent inside a 200 stream (`data: {"error": …}`; the openai SDK raises it as an
 * APIError without a status).
 */
export function streamError(body: unknown, scope: ClassifyScope, cause: unknown): ExaiError {
  const { dialect, settings, redact } = scope;
  const error = parseProviderError(body);
  const kind = dialect.classifyError?.(error, undefined) ?? sharedClass(error);
  const message = `${dialect.label}: the provider reported an error in the stream: ${redact(extractMessage({ error: body }))}`;
  const details = { provider: settings.name, provider_code: error.code || error.type || undefined };
  if (kind === "rate_limited" || kind === "quota") {
    return new ExaiError("RATE_LIMITED", message, { retryable: kind === "rate_limited", cause, details });
  }
  return new ExaiError("PROVIDER_ERROR", message, { retryable: kind === "transient", cause, details });
}

/** Maps an HTTP error status + body to an ExaiError. */
export function httpError(
  status: number,
  body: unknown,
  headers: { get(name: string): string | null } | undefined,
  scope: ClassifyScope,
): ExaiError {
  const { dialect, settings, redact } = scope;
  // Provider bodies may echo the request, key included (a 401 "invalid key sk-…").
  const detail = redact(extractMessage(body));
  const base = { details: { status, provider: settings.name } };
  const retryAfterMs = parseRetryAfterMs(headers);
  if (status === 429) {
    const parsed = parseProviderError(body);
    if ((dialect.classifyError?.(parsed, status) ?? sharedClass(parsed)) === "quota") {
      return new ExaiError(
        "RATE_LIMITED",
        `${dialect.label}: account quota exhausted (HTTP 429: ${detail}); top up the account or use another provider`,
        { ...base, retryable: false },
      );
    }
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
      { ...base, retryable: false },
    );
  }
  const retryable = RETRYABLE_STATUSES.has(status);
  return new ExaiError("PROVIDER_ERROR", `${dialect.label}: HTTP ${status} (${detail})`, {
    ...base,
    retryable,
    ...(retryAfterMs !== undefined && retryable ? { retryAfterS: retryAfterMs / 1000 } : {}),
  });
}

/**
 * Classifies whatever an attempt threw into an ExaiError with `retryable` set: the attempt's own
 * timeout, the call's abort, SDK HTTP and stream errors, undici connect/header timeouts, connection
 * failures, and anything unreadable.
 */
export function classifyAttemptError(
  error: unknown,
  attemptTimeout: ExaiError | undefined,
  context: ProviderCallContext,
  scope: ClassifyScope & { timeouts: TimeoutConfig; api: typeof OpenAI | undefined },
): ExaiError {
  const { dialect, settings, redact, timeouts, api } = scope;
  if (attemptTimeout) return attemptTimeout;
  if (context.signal.aborted) return abortReason(context.signal);
  if (ExaiError.is(error)) return error;
  // SDK errors exist only once the SDK is loaded (the first attempt loads it).
  if (api && error instanceof api.APIError && error.status !== undefined) {
    return httpError(error.status, error.error ?? error.message, error.headers, scope);
  }
  const cause = error instanceof Error ? ((error as { cause?: unknown }).cause ?? error) : error;
  const errorCode = (cause as { code?: string } | undefined)?.code;
  if (errorCode === "UND_ERR_CONNECT_TIMEOUT") {
    return new ExaiError(
      "TIMEOUT",
      `${dialect.label}: connecting to ${settings.baseUrl} timed out after ${formatSeconds(timeouts.connectMs / 1000)}; check the network or ${dialect.label.toUpperCase()}_API_URL`,
      { retryable: true, cause: error, details: { layer: "connect", budget_s: timeouts.connectMs / 1000 } },
    );
  }
  if (errorCode === "UND_ERR_HEADERS_TIMEOUT" || (api && error instanceof api.APIConnectionTimeoutError)) {
    return new ExaiError(
      "TIMEOUT",
      `${dialect.label}: no response headers within the HTTP ceiling of ${formatSeconds(timeouts.httpMs / 1000)} (EX_HTTP_TIMEOUT_SECONDS)`,
      { retryable: true, cause: error, details: { layer: "http", budget_s: timeouts.httpMs / 1000 } },
    );
  }
  if (api && error instanceof api.APIError && error.status === undefined && error.error !== undefined) {
    return streamError(error.error, scope, error);
  }
  if (api && error instanceof api.APIConnectionError) {
    const detail = redact((cause as Error | undefined)?.message ?? "connection failed");
    return new ExaiError(
      "PROVIDER_ERROR",
      `${dialect.label}: connection to ${settings.baseUrl} failed (${errorCode ?? detail}); check that the endpoint is reachable`,
      { retryable: true, cause: error, details: { provider: settings.name } },
    );
  }
  const message = redact(error instanceof Error ? error.message : String(error));
  return new ExaiError(
    "PROVIDER_ERROR",
    `${dialect.label}: the response could not be read (${message}); the provider sent malformed data`,
    { retryable: true, cause: error, details: { provider: settings.name } },
  );
}
