/** Unit tests of the call-pipeline pieces: retries and backoff (fake timers), admission, coalescing, deadlines. */
import { afterEach, describe, expect, it, vi } from "vitest";
import { ExaiError } from "../src/base/errors.js";
import { createAdmission } from "../src/pipeline/admission.js";
import { createCoalescer } from "../src/pipeline/coalesce.js";
import { sleep, startDeadline } from "../src/timing/deadline.js";
import { backoffDelayMs, parseRetryAfterMs, withRetries } from "../src/timing/retry.js";

afterEach(() => {
  vi.useRealTimers();
});

const policy = { maxRetries: 3, baseDelayMs: 500, maxDelayMs: 8000 };
const retryable = (message = "boom") =>
  new ExaiError("PROVIDER_ERROR", message, { retryable: true, details: { status: 503 } });

describe("backoff", () => {
  it("draws full jitter: uniform in [0, min(8 s, 0.5 s · 2^(n−1)))", () => {
    const low = { ...policy, random: () => 0 };
    const high = { ...policy, random: () => 0.999999 };
    expect(backoffDelayMs(1, low)).toBe(0);
    expect(backoffDelayMs(1, high)).toBeCloseTo(500, 0);
    expect(backoffDelayMs(3, high)).toBeCloseTo(2000, 0);
    expect(backoffDelayMs(10, high)).toBeCloseTo(8000, 0);
  });

  it("parses retry-after-ms, retry-after seconds and HTTP dates", () => {
    const headers = (entries: Record<string, string>) => new Headers(entries);
    expect(parseRetryAfterMs(headers({ "retry-after-ms": "250" }))).toBe(250);
    expect(parseRetryAfterMs(headers({ "retry-after": "2" }))).toBe(2000);
    const date = new Date(Date.now() + 3000).toUTCString();
    expect(parseRetryAfterMs(headers({ "retry-after": date }))).toBeGreaterThan(1000);
    expect(parseRetryAfterMs(headers({}))).toBeUndefined();
    expect(parseRetryAfterMs(headers({ "retry-after": "soon" }))).toBeUndefined();
  });
});

describe("withRetries", () => {
  it("retries retryable failures with backoff and returns the value with every attempt recorded", async () => {
    vi.useFakeTimers();
    let calls = 0;
    const controller = new AbortController();
    const pending = withRetries(
      async () => {
        calls++;
        if (calls < 3) throw retryable();
        return "ok";
      },
      {
        policy: { ...policy, random: () => 0.5 },
        deadlineAt: performance.now() + 60_000,
        signal: controller.signal,
        label: "GLM",
      },
    );
    await vi.advanceTimersByTimeAsync(250); // first backoff
    await vi.advanceTimersByTimeAsync(500); // second backoff
    const { value, attempts } = await pending;
    expect(value).toBe("ok");
    expect(attempts.map((attempt) => attempt.outcome)).toEqual(["PROVIDER_ERROR", "PROVIDER_ERROR", "ok"]);
  });

  it("does not retry a non-retryable error", async () => {
    let calls = 0;
    await expect(
      withRetries(
        async () => {
          calls++;
          throw new ExaiError("PROVIDER_ERROR", "bad request", {
            retryable: false,
            details: { status: 400 },
          });
        },
        {
          policy,
          deadlineAt: performance.now() + 60_000,
          signal: new AbortController().signal,
          label: "GLM",
        },
      ),
    ).rejects.toMatchObject({ code: "PROVIDER_ERROR" });
    expect(calls).toBe(1);
  });

  it("fails at once, with the last error, when the backoff would cross the deadline", async () => {
    const started = performance.now();
    const error = await withRetries(
      async () => {
        throw new ExaiError("RATE_LIMITED", "slow down", { retryable: true, retryAfterS: 10 });
      },
      { policy, deadlineAt: performance.now() + 2000, signal: new AbortController().signal, label: "Kimi" },
    ).then(
      () => undefined,
      (caught: unknown) => caught as ExaiError,
    );
    expect(performance.now() - started).toBeLessThan(100);
    expect(error?.code).toBe("RATE_LIMITED");
    expect(error?.message).toMatch(/would pass the deadline/);
  });

  it("stops sleeping the moment the call is cancelled", async () => {
    const controller = new AbortController();
    const pending = withRetries(
      async () => {
        throw retryable();
      },
      {
        policy: { ...policy, baseDelayMs: 5000 },
        deadlineAt: performance.now() + 60_000,
        signal: controller.signal,
        label: "GLM",
      },
    );
    setTimeout(() => controller.abort(new ExaiError("CANCELLED", "client went away")), 20);
    const started = performance.now();
    await expect(pending).rejects.toMatchObject({ code: "CANCELLED" });
    expect(performance.now() - started).toBeLessThan(500);
  });

  it("gives up after maxRetries and lists every attempt", async () => {
    vi.useFakeTimers();
    const pending = withRetries(
      async () => {
        throw retryable();
      },
      {
        policy: { ...policy, maxRetries: 2, random: () => 0 },
        deadlineAt: performance.now() + 60_000,
        signal: new AbortController().signal,
        label: "GLM",
      },
    ).then(
      () => undefined,
      (caught: unknown) => caught as ExaiError,
    );
    await vi.advanceTimersByTimeAsync(10_000);
    const error = await pending;
    expect(error?.message).toMatch(/3 attempts: #1 503 .*#2 503 .*#3 503/);
    expect(error?.details.attempts).toHaveLength(3);
  });
});

describe("deadlines", () => {
  it("aborts with a TIMEOUT naming the layer and budget, and clears its timer when disposed", async () => {
    const deadline = startDeadline(30, "tool");
    await new Promise((resolve) => setTimeout(resolve, 60));
    expect(deadline.signal.aborted).toBe(true);
    expect(deadline.signal.reason).toMatchObject({
      code: "TIMEOUT",
      details: { layer: "tool", budget_s: 0.03 },
    });
    const disposed = startDeadline(30, "tool");
    disposed.dispose();
    await new Promise((resolve) => setTimeout(resolve, 60));
    expect(disposed.signal.aborted).toBe(false);
  });

  it("follows its parent's cancellation", () => {
    const parent = new AbortController();
    const deadline = startDeadline(10_000, "expert", parent.signal);
    parent.abort(new ExaiError("CANCELLED", "stop"));
    expect(deadline.signal.reason).toMatchObject({ code: "CANCELLED" });
    deadline.dispose();
  });

  it("sleep rejects with the abort reason", async () => {
    const controller = new AbortController();
    const pending = sleep(10_000, controller.signal);
    controller.abort(new ExaiError("TIMEOUT", "late", { details: { layer: "tool", budget_s: 10 } }));
    await expect(pending).rejects.toMatchObject({ code: "TIMEOUT" });
  });
});

describe("admission", () => {
  const caps = { global: 2, provider: { glm: 1, kimi: 6 }, tool: { analyze: 1 }, session: 5 };

  it("refuses a call over any cap at once with OVER_CAPACITY, retry_after and the cap named", () => {
    const admission = createAdmission(caps);
    admission.recordDuration("chat", 4000);
    const lease = admission.acquire({ tool: "chat", provider: "glm" });
    let error: ExaiError | undefined;
    try {
      admission.acquire({ tool: "chat", provider: "glm" });
    } catch (caught) {
      error = caught as ExaiError;
    }
    expect(error?.code).toBe("OVER_CAPACITY");
    expect(error?.retryAfterS).toBe(2);
    expect(error?.message).toMatch(/provider glm has 1\/1 .*EXAI_WS_GLM_MAX_INFLIGHT/);
    lease.release();
    admission.acquire({ tool: "chat", provider: "glm" }).release();
  });

  it("a refused call holds no slot, and release is idempotent", () => {
    const admission = createAdmission(caps);
    const a = admission.acquire({ tool: "analyze", session: "s" });
    expect(() => admission.acquire({ tool: "analyze", session: "s" })).toThrow(/tool analyze/);
    expect(admission.snapshot().global.inflight).toBe(1);
    expect(admission.snapshot().session.s?.inflight).toBe(1);
    a.release();
    a.release();
    expect(admission.snapshot().global.inflight).toBe(0);
    expect(admission.snapshot().tool.analyze?.inflight).toBe(0);
    expect(admission.rejections().tool).toBe(1);
  });

  it("enforces the global cap", () => {
    const admission = createAdmission(caps);
    const leases = [admission.acquire({ tool: "chat" }), admission.acquire({ tool: "version" })];
    expect(() => admission.acquire({ tool: "status" })).toThrow(/the server has 2\/2/);
    for (const lease of leases) lease.release();
  });
});

describe("coalescing", () => {
  it("identical calls share one execution", async () => {
    const coalescer = createCoalescer();
    let runs = 0;
    const start = async () => {
      runs++;
      await new Promise((resolve) => setTimeout(resolve, 30));
      return "result";
    };
    const [a, b] = await Promise.all([
      coalescer.run("k", start, new AbortController().signal, 5000),
      coalescer.run("k", start, new AbortController().signal, 5000),
    ]);
    expect(runs).toBe(1);
    expect([a.shared, b.shared]).toEqual([false, true]);
    expect(b.value).toBe("result");
    expect(coalescer.size()).toBe(0);
  });

  it("one waiter cancelling does not fail the others; the shared run is aborted only when all have left", async () => {
    const coalescer = createCoalescer();
    let sharedSignal: AbortSignal | undefined;
    const start = (signal: AbortSignal) => {
      sharedSignal = signal;
      return new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => resolve("done"), 60);
        signal.addEventListener("abort", () => {
          clearTimeout(timer);
          reject(signal.reason);
        });
      });
    };
    const first = new AbortController();
    const second = new AbortController();
    const a = coalescer.run("k", start, first.signal, 5000);
    const b = coalescer.run("k", start, second.signal, 5000);
    first.abort(new ExaiError("CANCELLED", "first left"));
    await expect(a).rejects.toMatchObject({ code: "CANCELLED" });
    expect(sharedSignal?.aborted).toBe(false);
    await expect(b).resolves.toMatchObject({ value: "done" });

    const third = new AbortController();
    const c = coalescer.run("k2", start, third.signal, 5000);
    third.abort(new ExaiError("CANCELLED", "last left"));
    await expect(c).rejects.toMatchObject({ code: "CANCELLED" });
    expect(sharedSignal?.aborted).toBe(true);
  });

  it("a caller does not join a run that ends well before its own deadline", async () => {
    const coalescer = createCoalescer();
    let runs = 0;
    const start = async () => {
      runs++;
      await new Promise((resolve) => setTimeout(resolve, 20));
      return runs;
    };
    const now = performance.now();
    const short = coalescer.run("k", start, new AbortController().signal, 5000, {
      at: now + 1000,
      toleranceMs: 100,
    });
    const long = coalescer.run("k", start, new AbortController().signal, 5000, {
      at: now + 45_000,
      toleranceMs: 4500,
    });
    const close = coalescer.run("k", start, new AbortController().signal, 5000, {
      at: now + 45_050,
      toleranceMs: 4500,
    });
    const [a, b, c] = await Promise.all([short, long, close]);
    expect([a.shared, b.shared, c.shared]).toEqual([false, false, true]);
    expect(runs).toBe(2);
  });

  it("an expired in-flight key no longer captures new callers", async () => {
    let time = 0;
    const coalescer = createCoalescer(() => time);
    let runs = 0;
    const start = async () => {
      runs++;
      await new Promise((resolve) => setTimeout(resolve, 20));
      return runs;
    };
    const a = coalescer.run("k", start, new AbortController().signal, 100);
    time = 200;
    const b = coalescer.run("k", start, new AbortController().signal, 100);
    await Promise.all([a, b]);
    expect(runs).toBe(2);
  });
});
