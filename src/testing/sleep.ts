/** The fake provider's one wait: abortable, and its timer tracked so that close() can clear it. */

/** Resolves true after `ms`, or false as soon as `signal` aborts; the pending timer sits in `timers`. */
export function sleep(timers: Set<NodeJS.Timeout>, ms: number, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(false);
  if (ms <= 0) return Promise.resolve(true);
  return new Promise((resolve) => {
    const onAbort = (): void => {
      clearTimeout(timer);
      timers.delete(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      timers.delete(timer);
      signal.removeEventListener("abort", onAbort);
      resolve(true);
    }, ms);
    timer.unref();
    timers.add(timer);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

/** An abortable wait bound to one instance's timers: true after `ms`, false once `signal` aborts. */
export type Wait = (ms: number, signal: AbortSignal) => Promise<boolean>;
