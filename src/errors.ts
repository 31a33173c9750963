/**
 * The one error type of exai (SPEC §6.7). Every failure that reaches a user carries a stable
 * `code`, a message that says what happened, where and what to do, and whether a retry can help.
 */

/** Stable error codes (SPEC §6.7). Clients and tests match on these strings. */
export const ERROR_CODES = [
  "TIMEOUT",
  "CANCELLED",
  "OVER_CAPACITY",
  "DUPLICATE",
  "RATE_LIMITED",
  "PROVIDER_ERROR",
  "NO_PROVIDER",
  "MODEL_NOT_FOUND",
  "INVALID_ARGUMENT",
  "FILE_ACCESS_DENIED",
  "CONFIG_INVALID",
  "INTERNAL",
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

/** Where a timeout fired: the layer names used in messages and metrics. */
export type TimeoutLayer =
  | "connect"
  | "first_chunk"
  | "stream_idle"
  | "http"
  | "expert"
  | "tool"
  | "daemon"
  | "shim"
  | "client"
  | "web_search";

export interface ExaiErrorOptions {
  cause?: unknown;
  /** True when the same request may succeed if tried again (after `retryAfterS`). */
  retryable?: boolean;
  /** Seconds the caller should wait before trying again (OVER_CAPACITY, RATE_LIMITED). */
  retryAfterS?: number;
  /** Extra machine-readable facts (layer, budget_s, attempts, field, path, original_request_id…). */
  details?: Record<string, unknown>;
}

const BRAND = Symbol.for("exai.error");

export class ExaiError extends Error {
  readonly code: ErrorCode;
  readonly retryable: boolean;
  readonly retryAfterS: number | undefined;
  readonly details: Record<string, unknown>;
  readonly [BRAND] = true;

  constructor(code: ErrorCode, message: string, options: ExaiErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "ExaiError";
    this.code = code;
    this.retryable = options.retryable ?? false;
    this.retryAfterS = options.retryAfterS;
    this.details = options.details ?? {};
  }

  /** Brand check that survives two copies of this module (e.g. dist and src in one test run). */
  static is(value: unknown): value is ExaiError {
    return typeof value === "object" && value !== null && (value as Record<symbol, unknown>)[BRAND] === true;
  }

  /** The wire shape of an error (SPEC §4, §7): what clients see. */
  toPayload(traceId?: string): ErrorPayload {
    const payload: ErrorPayload = { status: "error", code: this.code, message: this.message };
    if (traceId !== undefined) payload.trace_id = traceId;
    if (this.retryAfterS !== undefined) payload.retry_after = round3(this.retryAfterS);
    for (const [key, value] of Object.entries(this.details)) {
      if (!(key in payload)) (payload as unknown as Record<string, unknown>)[key] = value;
    }
    return payload;
  }
}

export interface ErrorPayload {
  status: "error";
  code: ErrorCode;
  message: string;
  trace_id?: string;
  retry_after?: number;
  [key: string]: unknown;
}

/**
 * Turns anything thrown into an ExaiError. Unknown errors become INTERNAL with their message
 * (never a stack trace) so the user still learns what failed.
 */
export function toExaiError(error: unknown, where = "exai"): ExaiError {
  if (ExaiError.is(error)) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new ExaiError(
    "INTERNAL",
    `${where}: unexpected failure: ${message}. This is a bug; please report it.`,
    {
      cause: error,
    },
  );
}

/** Shorthand for the most common user error: a bad argument, named by field. */
export function invalidArgument(
  field: string,
  message: string,
  details: Record<string, unknown> = {},
): ExaiError {
  return new ExaiError("INVALID_ARGUMENT", `${field}: ${message}`, { details: { field, ...details } });
}

/** Formats seconds for messages: "30.0 s", "0.25 s". */
export function formatSeconds(seconds: number): string {
  if (seconds >= 10) return `${seconds.toFixed(1)} s`;
  return `${Number(seconds.toFixed(2))} s`;
}

function round3(value: number): number {
  return Math.round(value * 1000) / 1000;
}
