/**
 * Semantic coalescing (SPEC §6.4): identical calls in flight share one execution. The shared
 * execution is reference-counted: it is aborted only when every waiter has gone (cancelled or timed
 * out). Each waiter still has its own deadline — a waiter whose deadline passes gets its TIMEOUT at
 * once while the others keep waiting. This avoids the trap of shared-promise libraries, where the
 * first caller's cancel fails every waiter, and the Python original's bug, where identical calls
 * waited out the whole timeout.
 */
import { raceSignal } from "./deadline.js";

export interface Coalescer {
  /**
   * Runs `start` for `key`, or joins the execution already in flight for it.
   * `start` receives the shared signal (aborted when the last waiter leaves).
   * Rejects with the waiter's own abort reason when `waiterSignal` aborts first.
   */
  run<T>(
    key: string,
    start: (sharedSignal: AbortSignal) => Promise<T>,
    waiterSignal: AbortSignal,
    ttlMs: number,
  ): Promise<{ value: T; shared: boolean }>;
  /** Keys currently in flight. */
  size(): number;
}

interface Entry {
  promise: Promise<unknown>;
  controller: AbortController;
  waiters: number;
  expiresAt: number;
}

export function createCoalescer(clock: () => number = () => performance.now()): Coalescer {
  const entries = new Map<string, Entry>();
  return {
    async run<T>(
      key: string,
      start: (sharedSignal: AbortSignal) => Promise<T>,
      waiterSignal: AbortSignal,
      ttlMs: number,
    ) {
      let entry = entries.get(key);
      let shared = true;
      // An in-flight key expires (SPEC §6.4) so a stuck execution cannot capture later callers.
      if (!entry || entry.expiresAt <= clock()) {
        shared = false;
        const controller = new AbortController();
        const created: Entry = {
          promise: Promise.resolve(),
          controller,
          waiters: 0,
          expiresAt: clock() + ttlMs,
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
      const current = entry;
      current.waiters++;
      try {
        const value = (await raceSignal(current.promise, waiterSignal)) as T;
        return { value, shared };
      } finally {
        current.waiters--;
        if (current.waiters === 0 && waiterSignal.aborted) current.controller.abort(waiterSignal.reason);
      }
    },
    size: () => entries.size,
  };
}
