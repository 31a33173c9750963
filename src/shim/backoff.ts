/**
 * The shim's three retries, all on the one policy of ../timing/retry.ts (full jitter, a server's
 * retry_after as a floor, never a sleep past the deadline, abort-aware):
 * - connecting to the daemon: 0.25 s growing to 2 s (0.5 s while a daemon it started boots),
 *   within the connect window;
 * - a call the daemon refused with OVER_CAPACITY: re-sent up to config.admission.retries (3, SPEC §6.5)
 *   times inside the call's deadline, never sooner than the daemon's retry_after;
 * - listing the daemon's tools: three attempts, briefly spaced.
 */
import { ExaiError } from "../base/errors.js";
import { now } from "../timing/deadline.js";
import { retryLoop, type Classify, type RetryPolicy } from "../timing/retry.js";

/** Connect backoff: the first wait at most 0.25 s, growing to at most 2 s; bounded by the window. */
export const CONNECT_POLICY: RetryPolicy = { maxRetries: Infinity, baseDelayMs: 250, maxDelayMs: 2000 };
/** Backoff cap while a daemon this shim started is booting (it boots in ~0.7 s), ms. */
export const SPAWNED_MAX_DELAY_MS = 500;
/** One connection attempt (socket + WebSocket handshake + hello_ack), ms. */
export const ATTEMPT_TIMEOUT_MS = 2000;
/** OVER_CAPACITY backoff: at most 0.25 s · 2^(n−1), capped at 4 s, and at least retry_after. */
export const OVER_CAPACITY_POLICY = { baseDelayMs: 250, maxDelayMs: 4000 } as const;
/** Tool listing: three attempts, waits of at most 0.1 s and 0.2 s. */
export const LIST_TOOLS_POLICY: RetryPolicy = { maxRetries: 2, baseDelayMs: 100, maxDelayMs: 1000 };

export interface ConnectBackoffOptions<T> {
  /** End of the connect window, ms on the monotonic clock (`now()`). */
  windowEnd: number;
  signal: AbortSignal;
  /** Source of randomness in [0, 1) (tests). */
  random?: () => number;
  /** One connection attempt, bounded by `timeoutMs` (at most ATTEMPT_TIMEOUT_MS). */
  open(timeoutMs: number): Promise<T>;
  /**
   * Classifies a failed attempt: retryable failures are retried (their error is the one the loop
   * ends with when the window closes; `maxDelayMs: SPAWNED_MAX_DELAY_MS` while a daemon boots);
   * throwing ends the loop at once with what was thrown.
   */
  classify: Classify;
  onBackoff?: (delayMs: number, error: ExaiError) => void;
}

/**
 * Opens the daemon link with backoff until an attempt succeeds or the window closes.
 * @throws ExaiError — the last classified error (with `details.attempts`) when the window closes,
 *   the signal's reason when it aborts; or whatever `classify` throws.
 */
export async function connectWithBackoff<T>(options: ConnectBackoffOptions<T>): Promise<T> {
  const { value } = await retryLoop(
    {
      policy: { ...CONNECT_POLICY, ...(options.random ? { random: options.random } : {}) },
      deadlineAt: options.windowEnd,
      signal: options.signal,
      classify: options.classify,
      ...(options.onBackoff ? { onBackoff: options.onBackoff } : {}),
    },
    () => options.open(Math.max(1, Math.min(ATTEMPT_TIMEOUT_MS, options.windowEnd - now()))),
  );
  return value;
}

/** The part of a daemon answer the OVER_CAPACITY retry reads. */
export interface AnswerWithError {
  error?: { code: string; message?: string; retry_after?: number } | undefined;
}

export interface OverCapacityOptions {
  /** Re-sends after the first (config.admission.retries: 3, SPEC §6.5). */
  retries: number;
  /** The call's deadline, ms on the monotonic clock. */
  deadlineAt: number;
  /** Kept free before the deadline for the answer's transit, ms. */
  reserveMs: number;
  signal: AbortSignal;
  random?: () => number;
  onBackoff?: (delayMs: number, retry: number) => void;
}

/** Marks an attempt whose answer was OVER_CAPACITY (thrown inside the loop only). */
class OverCapacityAnswer<A> {
  constructor(readonly answer: A) {}
}

/**
 * Sends a call (`exchange`, with a fresh request_id per attempt) and re-sends it while the daemon
 * answers OVER_CAPACITY, waiting full jitter but at least the answer's `retry_after`, as long as
 * the wait ends `reserveMs` before the deadline. Resolves with the first other answer, or the last
 * OVER_CAPACITY answer when the retries or the time run out.
 * @throws whatever `exchange` throws, unchanged; the signal's reason when it aborts during a wait.
 */
export async function retryOverCapacity<A extends AnswerWithError>(
  options: OverCapacityOptions,
  exchange: (attempt: number) => Promise<A>,
): Promise<A> {
  let refused: A | undefined;
  const classify: Classify = (caught) => {
    if (!(caught instanceof OverCapacityAnswer)) throw caught;
    const answer = (caught as OverCapacityAnswer<A>).answer;
    const retryAfterS = answer.error?.retry_after;
    return {
      error: new ExaiError("OVER_CAPACITY", answer.error?.message ?? "over capacity", {
        retryable: true,
        details: { cap: "daemon" },
        ...(retryAfterS !== undefined ? { retryAfterS } : {}),
      }),
      retryable: true,
      retryAfterMs: (retryAfterS ?? 0.5) * 1000,
    };
  };
  try {
    const { value } = await retryLoop(
      {
        policy: {
          ...OVER_CAPACITY_POLICY,
          maxRetries: options.retries,
          ...(options.random ? { random: options.random } : {}),
        },
        deadlineAt: options.deadlineAt,
        reserveMs: options.reserveMs,
        signal: options.signal,
        classify,
        ...(options.onBackoff
          ? { onBackoff: (delay, _error, attempt) => options.onBackoff?.(delay, attempt) }
          : {}),
      },
      async (attempt) => {
        refused = undefined;
        const answer = await exchange(attempt);
        if (answer.error?.code !== "OVER_CAPACITY") return answer;
        refused = answer;
        throw new OverCapacityAnswer(answer);
      },
    );
    return value;
  } catch (error) {
    // Out of retries or of time: the daemon's own OVER_CAPACITY answer is the result.
    if (
      refused !== undefined &&
      !options.signal.aborted &&
      ExaiError.is(error) &&
      error.code === "OVER_CAPACITY"
    )
      return refused;
    throw error;
  }
}

/**
 * Lists the daemon's tools (`list` connects and asks), retrying a failed attempt twice after a
 * brief wait; a non-retryable ExaiError (an unverifiable daemon) is final at once.
 * @throws ExaiError — the last failure (with `details.attempts`), or the signal's reason.
 */
export async function listToolsWithRetry<T>(
  options: { deadlineAt: number; signal: AbortSignal; random?: () => number },
  list: (attempt: number) => Promise<T>,
): Promise<T> {
  const { value } = await retryLoop(
    {
      policy: { ...LIST_TOOLS_POLICY, ...(options.random ? { random: options.random } : {}) },
      deadlineAt: options.deadlineAt,
      signal: options.signal,
      classify: (caught) => {
        if (ExaiError.is(caught)) return { error: caught, retryable: caught.retryable };
        const message = caught instanceof Error ? caught.message : String(caught);
        return {
          error: new ExaiError("INTERNAL", message, { retryable: true, cause: caught }),
          retryable: true,
        };
      },
    },
    list,
  );
  return value;
}
