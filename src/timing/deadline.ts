/**
 * Deadlines and abortable waits (SPEC §6.1). Every wait in exai races a deadline and an
 * AbortSignal; every timer is cleared when its wait ends and `unref()`ed so no timer keeps the
 * process alive. Times are milliseconds on the monotonic clock (`performance.now()`).
 */
import { ExaiError, formatSeconds, type TimeoutLayer } from "../base/errors.js";

/** Monotonic now, ms. */
export const now = (): number => performance.now();

/**
 * The error a deadline aborts with: TIMEOUT naming the layer and its budget; `lateMs` (how late
 * the deadline's timer fired, ms) is reported as `details.late_ms`.
 */
export function timeoutError(
  layer: TimeoutLayer,
  budgetMs: number,
  hint?: string,
  lateMs?: number,
): ExaiError {
  const what: Record<TimeoutLayer, string> = {
    connect: "connecting to the provider",
    first_chunk: "waiting for the first chunk",
    stream_idle: "waiting for the next stream chunk",
    http: "the HTTP request",
    expert: "the expert analysis",
    tool: "the tool call",
    daemon: "the daemon call",
    shim: "the shim call",
    client: "the client's deadline",
    web_search: "the web search",
  };
  return new ExaiError(
    "TIMEOUT",
    `${what[layer]} timed out: the ${layer} budget of ${formatSeconds(budgetMs / 1000)} ran out${hint ? `; ${hint}` : ""}`,
    {
      retryable: true,
      details: {
        layer,
        budget_s: budgetMs / 1000,
        ...(lateMs !== undefined ? { late_ms: Math.round(lateMs * 10) / 10 } : {}),
      },
    },
  );
}

export interface Deadline {
  /** Absolute deadline on the monotonic clock, ms. */
  readonly at: number;
  readonly budgetMs: number;
  readonly layer: TimeoutLayer;
  /** Aborts with the TIMEOUT error when the deadline passes, or with the parent's reason. */
  readonly signal: AbortSignal;
  remainingMs(): number;
  /** Clears the timer (call when the guarded work ends). Idempotent. */
  dispose(): void;
}

/**
 * Starts a deadline of `budgetMs` for `layer`, chained to an optional parent signal.
 * The returned signal aborts with `timeoutError(layer, budgetMs)` at the deadline.
 */
export function startDeadline(
  budgetMs: number,
  layer: TimeoutLayer,
  parent?: AbortSignal,
  hint?: string,
): Deadline {
  const controller = new AbortController();
  const at = now() + budgetMs;
  const timer = setTimeout(
    () => controller.abort(timeoutError(layer, budgetMs, hint, Math.max(0, now() - at))),
    Math.max(0, budgetMs),
  );
  timer.unref();
  const onParentAbort = () => controller.abort(parent?.reason);
  if (parent) {
    if (parent.aborted) controller.abort(parent.reason);
    else parent.addEventListener("abort", onParentAbort, { once: true });
  }
  const dispose = () => {
    clearTimeout(timer);
    parent?.removeEventListener("abort", onParentAbort);
  };
  controller.signal.addEventListener("abort", () => clearTimeout(timer), { once: true });
  return {
    at,
    budgetMs,
    layer,
    signal: controller.signal,
    remainingMs: () => Math.max(0, at - now()),
    dispose,
  };
}

/** The reason a signal aborted, as an ExaiError (CANCELLED when the reason is not one already). */
export function abortReason(signal: AbortSignal, where = "the call"): ExaiError {
  const reason: unknown = signal.reason;
  if (ExaiError.is(reason)) return reason;
  return new ExaiError("CANCELLED", `${where} was cancelled by the client`, { cause: reason });
}

/**
 * Sleeps `ms` milliseconds unless `signal` aborts first (then rejects with its reason as an
 * ExaiError). The timer is cleared either way.
 */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(abortReason(signal));
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortReason(signal as AbortSignal));
    };
    const timer = setTimeout(
      () => {
        signal?.removeEventListener("abort", onAbort);
        resolve();
      },
      Math.max(0, ms),
    );
    timer.unref();
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * Races a promise against a signal: settles with the promise, or rejects with the signal's reason
 * the moment it aborts (the promise's own work should also watch the signal and stop).
 */
export function raceSignal<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) {
    promise.catch(() => undefined); // the abort reason is what the caller sees; this rejection is expected
    return Promise.reject(abortReason(signal));
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(abortReason(signal));
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(error);
      },
    );
  });
}

/** Combines signals: the result aborts with the reason of the first that aborts. */
export function anySignal(signals: Array<AbortSignal | undefined>): AbortSignal {
  const present = signals.filter((signal): signal is AbortSignal => signal !== undefined);
  if (present.length === 1) return present[0] as AbortSignal;
  return AbortSignal.any(present);
}
