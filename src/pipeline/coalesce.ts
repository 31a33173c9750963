/**
 * Semantic coalescing (SPEC §6.4): identical calls in flight share one execution. The shared
 * execution is reference-counted: it is aborted only when every waiter has gone (cancelled or timed
 * out). Each waiter still has its own deadline — a waiter whose deadline passes gets its TIMEOUT at
 * once while the others keep waiting. This avoids the trap of shared-promise libraries, where the
 * first caller's cancel fails every waiter, and the Python original's bug, where identical calls
 * waited out the whole timeout.
 */
import { raceSignal } from "../timing/deadline.js";

/** A caller's own deadline (monotonic ms) and how much earlier a shared run may end for it to join. */
export interface JoinDeadline {
  at: number;
  toleranceMs: number;
}

export interface Coalescer {
  /**
   * Runs `start` for `key`, or joins the execution already in flight for it.
   * `start` receives the shared signal (aborted when the last waiter leaves).
   * Rejects with the waiter's own abort reason when `waiterSignal` aborts first.
   * With `deadline`, the caller joins only a run whose own deadline is no earlier than
   * `deadline.at - deadline.toleranceMs` (a shorter run would hand it an early TIMEOUT).
   */
  run<T>(
    key: string,
    start: (sharedSignal: AbortSignal) => Promise<T>,
    waiterSignal: AbortSignal,
    ttlMs: number,
    deadline?: JoinDeadline,
  ): Promise<{ value: T; shared: boolean }>;
  /** Keys currently in flight. */
  size(): number;
}

interface Entry {
  promise: Promise<unknown>;
  controller: AbortController;
  waiters: number;
  expiresAt: number;
  /** The run's own deadline (monotonic ms); Infinity when not given. */
  deadlineAt: number;
}

export function createCoalescer(clock: () => number = () => performance.now()): Coalescer {
  const entries = new Map<string, Entry>();

  /** Whether a newcomer may join `entry`: live, not being aborted, not expired, ending late enough. */
  const joinable = (entry: Entry | undefined, deadline: JoinDeadline | undefined): entry is Entry =>
    entry !== undefined &&
    entry.expiresAt > clock() &&
    // An entry whose last waiter left is being aborted: it must not capture a new caller.
    !entry.controller.signal.aborted &&
    (deadline === undefined || entry.deadlineAt >= deadline.at - deadline.toleranceMs);

  return {
    async run<T>(
      key: string,
      start: (sharedSignal: AbortSignal) => Promise<T>,
      waiterSignal: AbortSignal,
      ttlMs: number,
      deadline?: JoinDeadline,
    ) {
      const existing = entries.get(key);
      let entry: Entry;
      let shared = true;
      if (joinable(existing, deadline)) {
        entry = existing;
      } else {
        shared = false;
        // An in-flight key expires (SPEC §6.4) so a stuck execution cannot capture later callers;
        // a replaced entry runs on for its own waiters.
        const controller = new AbortController();
        const created: Entry = {
          promise: Promise.resolve(),
          controller,
          waiters: 0,
          expiresAt: clock() + ttlMs,
          deadlineAt: deadline?.at ?? Number.POSITIVE_INFINITY,
        };
        created.promise = start(controller.signal).finally(() => {
          if (entries.get(key) === created) entries.delete(key);
        });
        // Waiters observe the promise through raceSignal; this guard keeps a rejection with no
        // remaining waiter from becoming an unhandled rejection.
        created.promise.catch(() => undefined);
        entries.set(key, created);
        entry = created;
      }
      entry.waiters++;
      try {
        const value = (await raceSignal(entry.promise, waiterSignal)) as T;
        return { value, shared };
      } finally {
        entry.waiters--;
        if (entry.waiters === 0 && waiterSignal.aborted) {
          entry.controller.abort(waiterSignal.reason);
          if (entries.get(key) === entry) entries.delete(key);
        }
      }
    },
    size: () => entries.size,
  };
}
