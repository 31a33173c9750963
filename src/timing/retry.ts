/**
 * The one retry policy of exai (SPEC §6.2), used by provider attempts, admission, the shim's
 * OVER_CAPACITY retry, its daemon connect backoff and its tool listing.
 *
 * The policy is Envoy's split: an overall deadline over all attempts; each attempt has its own
 * timeouts; a backoff sleep never crosses the deadline — if it would, we fail at once with the last
 * error instead of sleeping into a certain timeout. Backoff is "full jitter" (AWS architecture blog,
 * "Exponential Backoff And Jitter"): a uniform random wait in [0, min(cap, base·2^(n−1))], so
 * parallel callers spread out; a server's Retry-After is a floor, never shortened.
 */
import { ExaiError, formatSeconds, type AttemptSummary } from "../base/errors.js";
import { abortReason, now, sleep } from "./deadline.js";

/** HTTP statuses worth retrying (SPEC §6.2). 400, 401, 403, 404, 422 are never retried. */
export const RETRYABLE_STATUSES: ReadonlySet<number> = new Set([408, 429, 500, 502, 503, 504]);

/** One attempt of a retry loop, as recorded in results, error details and the CALL SUMMARY. */
export type AttemptRecord = AttemptSummary;

export interface RetryPolicy {
  /** Retries after the first attempt (Infinity: bounded only by the deadline). */
  maxRetries: number;
  /** Cap of the first backoff, ms (0.5 s for provider attempts). */
  baseDelayMs: number;
  /** Cap of every backoff, ms (8 s for provider attempts). */
  maxDelayMs: number;
  /** Source of randomness in [0, 1), injectable for tests. */
  random?: () => number;
}

/**
 * Backoff before retry number `retry` (1-based), ms: full jitter, a uniform draw in
 * [0, min(maxDelayMs, baseDelayMs·2^(retry−1))).
 */
export function backoffDelayMs(retry: number, policy: RetryPolicy): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** Math.max(0, retry - 1));
  return ceiling * (policy.random ?? Math.random)();
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

/** What a failed attempt means for the loop. */
export interface AttemptFailure {
  /** The attempt's error, as the caller will see it if this is the last attempt. */
  error: ExaiError;
  /** Whether another attempt may succeed. */
  retryable: boolean;
  /** Server-requested wait before the next attempt, ms: a floor of the backoff. */
  retryAfterMs?: number;
  /** A lower cap for this backoff than the policy's, ms (e.g. poll a booting daemon briskly). */
  maxDelayMs?: number;
}

/**
 * Classifies whatever an attempt threw. It may itself throw to end the loop at once with that
 * value unchanged (a failure that is not an ExaiError, or one that must keep its identity).
 */
export type Classify = (caught: unknown, attempt: number) => AttemptFailure;

/**
 * The default classification: an ExaiError keeps its `retryable` and `retryAfterS`; anything else
 * is a non-retryable INTERNAL naming the failure.
 */
export const classifyExaiError: Classify = (caught) => {
  const error = ExaiError.is(caught)
    ? caught
    : new ExaiError(
        "INTERNAL",
        `unexpected failure: ${caught instanceof Error ? caught.message : String(caught)}`,
        { cause: caught },
      );
  return {
    error,
    retryable: error.retryable,
    ...(error.retryAfterS !== undefined ? { retryAfterMs: error.retryAfterS * 1000 } : {}),
  };
};

export interface RetryLoopOptions {
  policy: RetryPolicy;
  /** Absolute deadline, ms on the monotonic clock (`now()`); Infinity for none. */
  deadlineAt: number;
  /** Cancels the loop: checked before each attempt and ends a backoff sleep at once. */
  signal: AbortSignal;
  /** Default: `classifyExaiError`. */
  classify?: Classify;
  /** Time kept free before the deadline: a backoff must end at least this long before it, ms. */
  reserveMs?: number;
  /**
   * Short label for messages ("GLM glm-4.6", "admission"). When set, a final error after more than
   * one attempt (or one cut short by the deadline) names every attempt in its message.
   */
  label?: string;
  /** Called before each attempt (progress); `total` is Infinity for a deadline-bounded loop. */
  onAttempt?: (attempt: number, total: number) => void;
  /** Called before a backoff sleep (progress, logs). */
  onBackoff?: (delayMs: number, failure: ExaiError, attempt: number) => void;
}

/** A successful loop: the value and every attempt made, the last one "ok". */
export interface RetryResult<T> {
  value: T;
  attempts: AttemptRecord[];
}

/**
 * Runs `attempt` until it succeeds, fails in a way `classify` calls final, the retries are spent,
 * the next backoff would cross the deadline, or `signal` aborts. Every attempt is recorded: in the
 * result, and in the final error's `details.attempts` (and message, when `label` is set).
 * @throws ExaiError — the last attempt's error with its attempt history; the abort reason (as an
 *   ExaiError, with the history) when `signal` aborts; or whatever `classify` throws, unchanged.
 */
export async function retryLoop<T>(
  options: RetryLoopOptions,
  attempt: (attemptNumber: number) => Promise<T>,
): Promise<RetryResult<T>> {
  const attempts: AttemptRecord[] = [];
  const classify = options.classify ?? classifyExaiError;
  const total = options.policy.maxRetries + 1;
  const fail = (error: ExaiError, note?: string) => withAttempts(error, attempts, options.label, note);
  for (let number = 1; ; number++) {
    if (options.signal.aborted) throw fail(abortReason(options.signal));
    options.onAttempt?.(number, total);
    const started = now();
    try {
      const value = await attempt(number);
      attempts.push({ attempt: number, durationMs: now() - started, outcome: "ok" });
      return { value, attempts };
    } catch (caught) {
      const durationMs = now() - started;
      // The caller's own cancellation or deadline is final: never retried.
      if (options.signal.aborted) {
        const reason = abortReason(options.signal);
        attempts.push(record(number, durationMs, reason));
        throw fail(reason);
      }
      let failure: AttemptFailure;
      try {
        failure = classify(caught, number);
      } catch (final) {
        attempts.push(record(number, durationMs, ExaiError.is(final) ? final : undefined));
        throw final;
      }
      const { error } = failure;
      attempts.push(record(number, durationMs, error));
      if (!failure.retryable || number >= total) throw fail(error);
      const policy =
        failure.maxDelayMs !== undefined
          ? { ...options.policy, maxDelayMs: Math.min(options.policy.maxDelayMs, failure.maxDelayMs) }
          : options.policy;
      const delay = Math.max(backoffDelayMs(number, policy), failure.retryAfterMs ?? 0);
      const remaining = options.deadlineAt - (options.reserveMs ?? 0) - now();
      if (delay >= remaining) {
        throw fail(
          error,
          `no retry: waiting ${formatSeconds(delay / 1000)} would pass the deadline (${formatSeconds(Math.max(0, remaining) / 1000)} left)`,
        );
      }
      options.onBackoff?.(delay, error, number);
      try {
        await sleep(delay, options.signal);
      } catch (sleepError) {
        throw fail(ExaiError.is(sleepError) ? sleepError : abortReason(options.signal));
      }
    }
  }
}

function record(attempt: number, durationMs: number, error: ExaiError | undefined): AttemptRecord {
  if (!error) return { attempt, durationMs, outcome: "INTERNAL" };
  const status = error.details.status;
  return {
    attempt,
    durationMs,
    outcome: error.code,
    ...(typeof status === "number" ? { status } : {}),
    message: error.message,
  };
}

/** The legacy options of `withRetries`: the label is required. */
export interface RetryOptions extends Omit<RetryLoopOptions, "label"> {
  /** Short label for messages: "GLM", "Kimi". */
  label: string;
}

/**
 * `retryLoop` with the attempt first (provider requests).
 * @throws ExaiError — as `retryLoop`.
 */
export function withRetries<T>(
  attempt: (attemptNumber: number) => Promise<T>,
  options: RetryOptions,
): Promise<RetryResult<T>> {
  return retryLoop(options, attempt);
}

/** Adds the attempt history to an error (details, and the message when labelled), keeping its code. */
function withAttempts(
  error: ExaiError,
  attempts: AttemptRecord[],
  label: string | undefined,
  note?: string,
): ExaiError {
  let message = error.message;
  if (label !== undefined && (attempts.length > 1 || note !== undefined)) {
    const history = attempts
      .map(
        (entry) =>
          `#${entry.attempt} ${entry.status ?? entry.outcome} after ${formatSeconds(entry.durationMs / 1000)}`,
      )
      .join(", ");
    message = `${error.message} (${label}: ${attempts.length} attempt${attempts.length === 1 ? "" : "s"}: ${history}${note ? `; ${note}` : ""})`;
  }
  return new ExaiError(error.code, message, {
    cause: error.cause ?? error,
    retryable: error.retryable,
    ...(error.retryAfterS !== undefined ? { retryAfterS: error.retryAfterS } : {}),
    details: { ...error.details, attempts: [...attempts] },
  });
}
