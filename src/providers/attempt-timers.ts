/**
 * The named timers of one provider attempt: the first chunk (provider timeout), then the silence
 * between chunks (EX_STREAM_IDLE_TIMEOUT_SECS). Whichever fires aborts the attempt's request with
 * a TIMEOUT naming its layer, its budget, what is left of the call and the variable to raise.
 */
import { ExaiError, formatSeconds, type TimeoutLayer } from "../base/errors.js";
import { now } from "../timing/deadline.js";
import type { ProviderName } from "../config/load.js";
import type { ProviderCallContext } from "./types.js";

interface AttemptTimerOptions {
  /** "GLM", "Kimi": the start of every message. */
  label: string;
  provider: ProviderName;
  /** The variable that sets the first-chunk budget ("GLM_TIMEOUT_SECS"). */
  timeoutVariable: string;
  /** Longest silence between stream chunks, ms. */
  streamIdleMs: number;
}

/** Controls of one attempt's timers. */
export interface AttemptTimers {
  /** Aborts on the call's signal or on a timer (or `stop`). */
  signal: AbortSignal;
  /** A chunk arrived: re-arms the idle timer. */
  activity(): void;
  /** The TIMEOUT (or `stop` reason) that ended the attempt, if any. */
  fired(): ExaiError | undefined;
  clear(): void;
  /** Ends the attempt now with `reason` (a bound was passed): aborts its HTTP request. */
  stop(reason: ExaiError): ExaiError;
}

/** Arms the first-chunk timer of attempt `attemptNumber` of `total` (budget `firstChunkMs`, ms). */
export function startAttemptTimers(
  firstChunkMs: number,
  attemptNumber: number,
  total: number,
  context: ProviderCallContext,
  options: AttemptTimerOptions,
): AttemptTimers {
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
          ? `raise ${options.timeoutVariable} or use a faster model`
          : "the stream stalled; raise EX_STREAM_IDLE_TIMEOUT_SECS if the provider is known to pause";
      fired = new ExaiError(
        "TIMEOUT",
        `${options.label} attempt ${attemptNumber}/${total} timed out after ${formatSeconds((now() - started) / 1000)} ${waiting} (${layer} budget ${formatSeconds(ms / 1000)})${budget}; ${fix}`,
        { retryable: true, details: { layer, budget_s: ms / 1000, provider: options.provider } },
      );
      controller.abort(fired);
    }, ms);
    timer.unref();
  };
  arm("first_chunk", firstChunkMs);
  return {
    signal: AbortSignal.any([context.signal, controller.signal]),
    activity: () => arm("stream_idle", options.streamIdleMs),
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
}
