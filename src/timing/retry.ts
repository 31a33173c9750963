/**
 * Retries with exponential backoff, jitter and Retry-After, bounded by the call's deadline
 * (SPEC §6.2). The policy is Envoy's split: an overall deadline over all attempts; each attempt
 * has its own timeouts; a backoff sleep never crosses the deadline — if it would, we fail at once
 * with the last error instead of sleeping into a certain timeout.
 */
import { ExaiError, formatSeconds } from "../base/errors.js";
import { abortReason, now, sleep } from "./deadline.js";

/** HTTP statuses worth retrying (SPEC §6.2). 400, 401, 403, 404, 422 are never retried. */
export const RETRYABLE_STATUSES: ReadonlySet<number> = new Set([408, 429, 500, 502, 503, 504]);

export interface AttemptRecord {
  attempt: number;
  durationMs: number;
  /** Error code of the attempt, or "ok". */
  outcome: string;
  status?: number;
  message?: string;
}

export interface RetryPolicy {
  /** Retries after the first attempt. */
  maxRetries: number;
  /** First backoff, ms (0.5 s by default). */
  baseDelayMs: number;
  /** Backoff cap, ms (8 s by default). */
  maxDelayMs: number;
  /** Source of randomness in [0, 1), injectable for tests. */
  random?: () => number;
}

/**
 * Backoff before retry number `retry` (1-based): base·2^(retry−1), capped, with "equal jitter"
 * (half fixed, half random) so parallel callers spread out but never retry instantly.
 */
export function backoffDelayMs(retry: number, policy: RetryPolicy): number {
  const exponential = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (retry - 1));
  const random = (policy.random ?? Math.random)();
  return exponential / 2 + (exponential / 2) * random;
}

/**
 * Parses `retry-after-ms` (ms) or `retry-after` (seconds or an HTTP date) into ms.
 * Returns undefined when absent or unparsable. Source: the openai SDK honours the same headers.
 */
export function parseRetryAfterMs(
  headers: { get(name: string): string | null } | undefined,
): number | undefined {
  if (!headers) return undefined;
  const ms = headers.get("retry-after-ms");
  if (ms !== null && ms.trim() !== "" && Number.isFinite(Number(ms))) return Math.max(0, Number(ms));
  const value = headers.get("retry-after");
  if (value === null || value.trim() === "") return undefined;
  if (Number.isFinite(Number(value))) return Math.max(0, Number(value) * 1000);
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

export interface AttemptFailure {
  error: ExaiError;
  /** Server-requested wait before the next attempt, ms. */
  retryAfterMs?: number;
}

export interface RetryOptions {
  policy: RetryPolicy;
  /** Absolute deadline, ms on the monotonic clock. */
  deadlineAt: number;
  signal: AbortSignal;
  /** Short label for messages: "GLM", "Kimi". */
  label: string;
  /** Called before each attempt (progress). */
  onAttempt?: (attempt: number, total: number) => void;
  /** Called before a backoff sleep (progress). */
  onBackoff?: (delayMs: number, failure: ExaiError) => void;
}

/**
 * Runs `attempt` until it succeeds, fails with a non-retryable error, the retries are spent or the
 * deadline is near. `attempt` must throw an ExaiError (`retryable` set correctly; RATE_LIMITED
 * carries `retryAfterS`). The final error lists every attempt in its message and `details.attempts`.
 * @throws ExaiError — the last attempt's error (with the attempt list), or the abort reason.
 */
export async function withRetries<T>(
  attempt: (attemptNumber: number) => Promise<T>,
  options: RetryOptions,
): Promise<{ value: T; attempts: AttemptRecord[] }> {
  const attempts: AttemptRecord[] = [];
  const total = options.policy.maxRetries + 1;
  for (let number = 1; ; number++) {
    if (options.signal.aborted) throw withAttempts(abortReason(options.signal), attempts, options.label);
    options.onAttempt?.(number, total);
    const started = now();
    try {
      const value = await attempt(number);
      attempts.push({ attempt: number, durationMs: now() - started, outcome: "ok" });
      return { value, attempts };
    } catch (caught) {
      const error = ExaiError.is(caught) ? caught : abortReasonOr(options.signal, caught);
      attempts.push({
        attempt: number,
        durationMs: now() - started,
        outcome: error.code,
        ...(typeof error.details.status === "number" ? { status: error.details.status } : {}),
        message: error.message,
      });
      // The caller's own cancellation or deadline is final: never retried.
      if (options.signal.aborted) throw withAttempts(abortReason(options.signal), attempts, options.label);
      if (!error.retryable || number >= total) throw withAttempts(error, attempts, options.label);
      const serverWait = error.retryAfterS !== undefined ? error.retryAfterS * 1000 : 0;
      const delay = Math.max(backoffDelayMs(number, options.policy), serverWait);
      const remaining = options.deadlineAt - now();
      if (delay >= remaining) {
        throw withAttempts(
          error,
          attempts,
          options.label,
          `no retry: waiting ${formatSeconds(delay / 1000)} would pass the deadline (${formatSeconds(Math.max(0, remaining) / 1000)} left)`,
        );
      }
      options.onBackoff?.(delay, error);
      await sleep(delay, options.signal).catch((sleepError: unknown) => {
        throw withAttempts(ExaiError.is(sleepError) ? sleepError : error, attempts, options.label);
      });
    }
  }
}

function abortReasonOr(signal: AbortSignal, caught: unknown): ExaiError {
  if (signal.aborted) return abortReason(signal);
  return new ExaiError(
    "INTERNAL",
    `unexpected failure: ${caught instanceof Error ? caught.message : String(caught)}`,
    {
      cause: caught,
    },
  );
}

/** Adds the attempt history to an error (message and details), keeping its code. */
function withAttempts(error: ExaiError, attempts: AttemptRecord[], label: string, note?: string): ExaiError {
  if (attempts.length <= 1 && note === undefined) {
    return new ExaiError(error.code, error.message, {
      cause: error.cause ?? error,
      retryable: error.retryable,
      ...(error.retryAfterS !== undefined ? { retryAfterS: error.retryAfterS } : {}),
      details: { ...error.details, attempts },
    });
  }
  const history = attempts
    .map(
      (record) =>
        `#${record.attempt} ${record.status ?? record.outcome} after ${formatSeconds(record.durationMs / 1000)}`,
    )
    .join(", ");
  const message = `${error.message} (${label}: ${attempts.length} attempt${attempts.length === 1 ? "" : "s"}: ${history}${note ? `; ${note}` : ""})`;
  return new ExaiError(error.code, message, {
    cause: error.cause ?? error,
    retryable: error.retryable,
    ...(error.retryAfterS !== undefined ? { retryAfterS: error.retryAfterS } : {}),
    details: { ...error.details, attempts },
  });
}
