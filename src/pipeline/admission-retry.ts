/**
 * Admission with retries (SPEC §6.5): where no shim retries for the client (the in-process stdio
 * server, `exai call`), a call refused with OVER_CAPACITY is retried inside its deadline on the one
 * retry policy (../timing/retry.ts): full jitter, never sooner than the refusal's retry_after,
 * never a wait that would cross the deadline.
 */
import { ExaiError } from "../base/errors.js";
import { abortReason } from "../timing/deadline.js";
import { retryLoop, type RetryPolicy } from "../timing/retry.js";
import type { Admission, AdmissionRequest, Lease } from "./admission.js";

/** Admission backoff: at most 0.1 s · 2^(n−1), capped at 2 s, and at least retry_after. */
export const ADMISSION_POLICY = { baseDelayMs: 100, maxDelayMs: 2000 } as const;

export interface AdmitOptions {
  /** Retries after the first refusal (0: refuse at once). */
  retries: number;
  /** The call's deadline, ms on the monotonic clock. */
  deadlineAt: number;
  /** The call's signal: a cancelled call never takes a slot. */
  signal: AbortSignal;
  random?: () => number;
  onBackoff?: (delayMs: number, refusal: ExaiError) => void;
}

/**
 * Takes admission for `request`, retrying OVER_CAPACITY refusals. The lease is only handed out
 * while `signal` is live, so the caller always gets it to release.
 * With `retries` 0 the refusal is thrown as admission made it.
 * @throws ExaiError — the last OVER_CAPACITY (its retry_after kept, `details.attempts` added), any
 *   other admission error at once, or the signal's reason.
 */
export async function acquireWithRetry(
  admission: Admission,
  request: AdmissionRequest,
  options: AdmitOptions,
): Promise<Lease> {
  if (options.retries <= 0) {
    if (options.signal.aborted) throw abortReason(options.signal);
    return admission.acquire(request);
  }
  const policy: RetryPolicy = {
    ...ADMISSION_POLICY,
    maxRetries: options.retries,
    ...(options.random ? { random: options.random } : {}),
  };
  const { value } = await retryLoop(
    {
      policy,
      deadlineAt: options.deadlineAt,
      signal: options.signal,
      classify: (caught) => {
        if (!ExaiError.is(caught) || caught.code !== "OVER_CAPACITY") throw caught;
        return {
          error: caught,
          retryable: true,
          ...(caught.retryAfterS !== undefined ? { retryAfterMs: caught.retryAfterS * 1000 } : {}),
        };
      },
      ...(options.onBackoff ? { onBackoff: options.onBackoff } : {}),
    },
    // Synchronous inside: the lease is taken in the same tick the signal was checked.
    async () => admission.acquire(request),
  );
  return value;
}
