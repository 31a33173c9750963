/**
 * The one retry policy (src/timing/retry.ts) under fake timers, and each of its uses: admission
 * (src/pipeline/admission-retry.ts) and the shim's connect backoff, OVER_CAPACITY retry and tool
 * listing (src/shim/backoff.ts).
 */
import { afterAll, afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { ExaiError } from "../src/base/errors.js";
import { createAdmission } from "../src/pipeline/admission.js";
import { acquireWithRetry } from "../src/pipeline/admission-retry.js";
import {
  ATTEMPT_TIMEOUT_MS,
  connectWithBackoff,
  listToolsWithRetry,
  retryOverCapacity,
  SPAWNED_MAX_DELAY_MS,
} from "../src/shim/backoff.js";
import { EventEmitter } from "node:events";
import type WebSocket from "ws";
import { createLogger } from "../src/base/logging.js";
import { createDaemonLink, DaemonGone } from "../src/shim/link.js";
import { now } from "../src/timing/deadline.js";
import { makeConfig, tempDir } from "./support/harness.js";
import { backoffDelayMs, retryLoop, type AttemptFailure, type RetryPolicy } from "../src/timing/retry.js";

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

const policy: RetryPolicy = { maxRetries: 3, baseDelayMs: 500, maxDelayMs: 8000 };
const flaky = (message = "boom") =>
  new ExaiError("PROVIDER_ERROR", message, { retryable: true, details: { status: 503 } });
const live = () => new AbortController().signal;
/** Settles a promise into a value or the error it rejected with (no unhandled rejection). */
const settle = <T>(promise: Promise<T>) =>
  promise.then(
    (value) => ({ value, error: undefined }),
    (error: unknown) => ({ value: undefined, error: error as ExaiError }),
  );

describe("retryLoop", () => {
  it("uses the fake clock (the deadline math below depends on it)", async () => {
    const before = now();
    await vi.advanceTimersByTimeAsync(1000);
    expect(now() - before).toBe(1000);
  });

  it("retries until success, waiting the jittered backoff, and records every attempt", async () => {
    const calls: number[] = [];
    const backoffs: number[] = [];
    const pending = retryLoop(
      {
        policy: { ...policy, random: () => 0.5 },
        deadlineAt: now() + 60_000,
        signal: live(),
        onBackoff: (delay) => backoffs.push(delay),
      },
      async (attempt) => {
        calls.push(now());
        if (attempt < 3) throw flaky();
        return "ok";
      },
    );
    await vi.advanceTimersByTimeAsync(249);
    expect(calls).toHaveLength(1); // first wait: 0.5 · min(8 s, 0.5 s) = 250 ms
    await vi.advanceTimersByTimeAsync(1);
    expect(calls).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(500); // second wait: 0.5 · 1 s
    const { value, attempts } = await pending;
    expect(value).toBe("ok");
    expect(backoffs).toEqual([250, 500]);
    expect(attempts.map((entry) => [entry.attempt, entry.outcome, entry.status])).toEqual([
      [1, "PROVIDER_ERROR", 503],
      [2, "PROVIDER_ERROR", 503],
      [3, "ok", undefined],
    ]);
  });

  it("draws each backoff uniformly in [0, min(cap, base·2^(n−1)))", () => {
    for (let retry = 1; retry <= 6; retry++) {
      const ceiling = Math.min(8000, 500 * 2 ** (retry - 1));
      const draws = Array.from({ length: 400 }, () => backoffDelayMs(retry, policy));
      expect(Math.min(...draws)).toBeGreaterThanOrEqual(0);
      expect(Math.max(...draws)).toBeLessThan(ceiling);
      // Full jitter, not equal jitter: some waits fall in the lower half.
      expect(draws.some((draw) => draw < ceiling / 2)).toBe(true);
    }
    expect(backoffDelayMs(1, { ...policy, random: () => 0 })).toBe(0);
  });

  it("never waits less than the server's Retry-After", async () => {
    let calls = 0;
    const pending = retryLoop(
      { policy: { ...policy, random: () => 0 }, deadlineAt: now() + 60_000, signal: live() },
      async () => {
        calls++;
        if (calls === 1)
          throw new ExaiError("RATE_LIMITED", "slow down", { retryable: true, retryAfterS: 3 });
        return calls;
      },
    );
    await vi.advanceTimersByTimeAsync(2999);
    expect(calls).toBe(1);
    await vi.advanceTimersByTimeAsync(1);
    await expect(pending).resolves.toMatchObject({ value: 2 });
  });

  it("fails at once with the last error when the wait would cross the deadline (no timer left)", async () => {
    const started = now();
    const { error } = await settle(
      retryLoop({ policy, deadlineAt: now() + 2000, signal: live(), label: "Kimi" }, async () => {
        throw new ExaiError("RATE_LIMITED", "slow down", { retryable: true, retryAfterS: 10 });
      }),
    );
    expect(now() - started).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
    expect(error?.code).toBe("RATE_LIMITED");
    expect(error?.retryAfterS).toBe(10);
    expect(error?.message).toMatch(/slow down \(Kimi: 1 attempt: #1 RATE_LIMITED .*would pass the deadline/);
    expect(error?.details.attempts).toHaveLength(1);
  });

  it("keeps reserveMs free before the deadline", async () => {
    const { error } = await settle(
      retryLoop(
        {
          policy: { ...policy, random: () => 0.999 }, // ~500 ms
          deadlineAt: now() + 1000,
          reserveMs: 600,
          signal: live(),
        },
        async () => {
          throw flaky();
        },
      ),
    );
    expect(error?.code).toBe("PROVIDER_ERROR");
    expect(vi.getTimerCount()).toBe(0);
  });

  it("ends a backoff sleep the moment the signal aborts, clearing its timer", async () => {
    const controller = new AbortController();
    let calls = 0;
    const pending = settle(
      retryLoop(
        {
          policy: { ...policy, baseDelayMs: 5000, random: () => 0.9 },
          deadlineAt: now() + 60_000,
          signal: controller.signal,
        },
        async () => {
          calls++;
          throw flaky();
        },
      ),
    );
    await vi.advanceTimersByTimeAsync(100);
    expect(vi.getTimerCount()).toBe(1);
    controller.abort(new ExaiError("CANCELLED", "client went away"));
    const { error } = await pending;
    expect(error?.code).toBe("CANCELLED");
    expect(error?.message).toBe("client went away");
    expect(error?.details.attempts).toHaveLength(1);
    expect(calls).toBe(1);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("never starts an attempt on an aborted signal", async () => {
    const controller = new AbortController();
    controller.abort();
    let calls = 0;
    const { error } = await settle(
      retryLoop({ policy, deadlineAt: now() + 60_000, signal: controller.signal }, async () => {
        calls++;
      }),
    );
    expect(error?.code).toBe("CANCELLED");
    expect(calls).toBe(0);
  });

  it("follows the classification: retryable or final, a thrown value passes unchanged", async () => {
    const plain = new Error("socket hang up");
    let calls = 0;
    const retried = settle(
      retryLoop(
        {
          policy: { ...policy, random: () => 0 },
          deadlineAt: now() + 60_000,
          signal: live(),
          classify: (caught): AttemptFailure => ({
            error: new ExaiError("INTERNAL", String((caught as Error).message), { retryable: true }),
            retryable: calls < 2,
          }),
        },
        async () => {
          calls++;
          throw plain;
        },
      ),
    );
    await vi.advanceTimersByTimeAsync(10);
    const { error } = await retried;
    expect(calls).toBe(2);
    expect(error?.message).toBe("socket hang up");

    const final = new Error("not ours to wrap");
    const thrown = await settle(
      retryLoop(
        {
          policy,
          deadlineAt: now() + 60_000,
          signal: live(),
          classify: () => {
            throw final;
          },
        },
        async () => {
          throw plain;
        },
      ),
    );
    expect(thrown.error).toBe(final);

    // Default: an ExaiError keeps its retryable; anything else is a final INTERNAL.
    const foreign = await settle(
      retryLoop({ policy, deadlineAt: now() + 60_000, signal: live() }, async () => {
        throw plain;
      }),
    );
    expect(foreign.error).toMatchObject({ code: "INTERNAL", retryable: false });
    expect(foreign.error?.message).toMatch(/socket hang up/);
  });

  it("stops after maxRetries and names every attempt when labelled", async () => {
    const pending = settle(
      retryLoop(
        {
          policy: { ...policy, maxRetries: 2, random: () => 0 },
          deadlineAt: now() + 60_000,
          signal: live(),
          label: "GLM",
        },
        async () => {
          throw flaky();
        },
      ),
    );
    await vi.advanceTimersByTimeAsync(10);
    const { error } = await pending;
    expect(error?.message).toMatch(/boom \(GLM: 3 attempts: #1 503 .*#2 503 .*#3 503/);
    expect(error?.details.attempts).toHaveLength(3);
    expect(error?.details.status).toBe(503);
  });

  it("caps one backoff lower when the classification asks", async () => {
    const backoffs: number[] = [];
    const pending = settle(
      retryLoop(
        {
          policy: { ...policy, maxRetries: 4, random: () => 0.999 },
          deadlineAt: now() + 60_000,
          signal: live(),
          classify: (caught) => ({ error: caught as ExaiError, retryable: true, maxDelayMs: 300 }),
          onBackoff: (delay) => backoffs.push(delay),
        },
        async () => {
          throw flaky();
        },
      ),
    );
    await vi.advanceTimersByTimeAsync(5000);
    await pending;
    expect(backoffs).toHaveLength(4);
    for (const delay of backoffs) expect(delay).toBeLessThan(300);
  });
});

describe("admission retry", () => {
  const caps = { global: 1, provider: {}, tool: {}, session: 10 };

  it("retries OVER_CAPACITY until a slot frees, no sooner than retry_after", async () => {
    const admission = createAdmission(caps);
    const holder = admission.acquire({ tool: "chat" });
    setTimeout(() => holder.release(), 1500);
    let taken = false;
    const pending = acquireWithRetry(
      admission,
      { tool: "chat" },
      { retries: 5, deadlineAt: now() + 30_000, signal: live(), random: () => 0 },
    ).then((lease) => {
      taken = true;
      return lease;
    });
    // No durations recorded yet: admission's retry_after is 1 s, the floor of every wait.
    await vi.advanceTimersByTimeAsync(999);
    expect(taken).toBe(false);
    await vi.advanceTimersByTimeAsync(1001); // second refusal at 1 s, slot free at 1.5 s, retry at 2 s
    const lease = await pending;
    expect(admission.snapshot().global.inflight).toBe(1);
    lease.release();
    expect(admission.snapshot().global.inflight).toBe(0);
  });

  it("gives up with the last OVER_CAPACITY, keeping retry_after and recording the attempts", async () => {
    const admission = createAdmission(caps);
    admission.acquire({ tool: "chat" });
    const pending = settle(
      acquireWithRetry(
        admission,
        { tool: "chat" },
        { retries: 2, deadlineAt: now() + 30_000, signal: live() },
      ),
    );
    await vi.advanceTimersByTimeAsync(10_000);
    const { error } = await pending;
    expect(error?.code).toBe("OVER_CAPACITY");
    expect(error?.retryAfterS).toBe(1);
    expect(error?.details.attempts).toHaveLength(3);
    expect(admission.rejections().global).toBe(3);
  });

  it("refuses at once when retrying would cross the deadline or retries are 0", async () => {
    const admission = createAdmission(caps);
    admission.acquire({ tool: "chat" });
    const late = await settle(
      acquireWithRetry(admission, { tool: "chat" }, { retries: 3, deadlineAt: now() + 500, signal: live() }),
    );
    expect(late.error?.code).toBe("OVER_CAPACITY");
    expect(vi.getTimerCount()).toBe(0);
    const none = await settle(
      acquireWithRetry(
        admission,
        { tool: "chat" },
        { retries: 0, deadlineAt: now() + 30_000, signal: live() },
      ),
    );
    expect(none.error?.code).toBe("OVER_CAPACITY");
    expect(admission.rejections().global).toBe(2);
  });

  it("a call cancelled while waiting never takes the slot", async () => {
    const admission = createAdmission(caps);
    const holder = admission.acquire({ tool: "chat" });
    const controller = new AbortController();
    const pending = settle(
      acquireWithRetry(
        admission,
        { tool: "chat" },
        { retries: 5, deadlineAt: now() + 30_000, signal: controller.signal },
      ),
    );
    await vi.advanceTimersByTimeAsync(200);
    holder.release();
    controller.abort();
    const { error } = await pending;
    expect(error?.code).toBe("CANCELLED");
    expect(admission.snapshot().global.inflight).toBe(0);
  });
});

describe("shim connect backoff", () => {
  const refused = (retryable = true) =>
    new ExaiError("INTERNAL", "the exai daemon is unreachable", { retryable });

  it("retries within the window with growing, jittered waits capped at 2 s, each attempt bounded", async () => {
    const starts: number[] = [];
    const timeouts: number[] = [];
    const t0 = now();
    const pending = settle(
      connectWithBackoff({
        windowEnd: t0 + 10_000,
        signal: live(),
        random: () => 0.999,
        open: async (timeoutMs) => {
          starts.push(now() - t0);
          timeouts.push(timeoutMs);
          throw new Error("ECONNREFUSED");
        },
        classify: () => ({ error: refused(), retryable: true }),
      }),
    );
    await vi.advanceTimersByTimeAsync(10_000);
    const { error } = await pending;
    expect(error?.message).toBe("the exai daemon is unreachable");
    const gaps = starts.slice(1).map((start, index) => start - (starts[index] as number));
    // 250, 500, 1000, 2000, 2000, … (× 0.999): doubling, capped at 2 s, all inside the window.
    const expected = [250, 500, 1000, 2000, 2000].map((ceiling) => ceiling * 0.999);
    gaps
      .slice(0, 5)
      .forEach((gap, index) => expect(Math.abs(gap - (expected[index] as number))).toBeLessThanOrEqual(1));
    expect(Math.max(...gaps)).toBeLessThan(2000);
    expect(starts.at(-1)).toBeLessThan(10_000);
    expect(Math.max(...timeouts)).toBeLessThanOrEqual(ATTEMPT_TIMEOUT_MS);
    expect(error?.details.attempts).toHaveLength(starts.length);
  });

  it("polls a booting daemon briskly and succeeds once it answers", async () => {
    let calls = 0;
    const starts: number[] = [];
    const t0 = now();
    const pending = connectWithBackoff({
      windowEnd: t0 + 10_000,
      signal: live(),
      random: () => 0.999,
      open: async () => {
        starts.push(now() - t0);
        if (++calls < 5) throw new Error("ECONNREFUSED");
        return "socket";
      },
      classify: () => ({ error: refused(), retryable: true, maxDelayMs: SPAWNED_MAX_DELAY_MS }),
    });
    await vi.advanceTimersByTimeAsync(3000);
    await expect(pending).resolves.toBe("socket");
    const gaps = starts.slice(1).map((start, index) => start - (starts[index] as number));
    for (const gap of gaps) expect(gap).toBeLessThan(SPAWNED_MAX_DELAY_MS);
  });

  it("a final failure (unverified daemon) ends at once, unchanged", async () => {
    const unverified = new ExaiError("CONFIG_INVALID", "the daemon could not be verified", {
      details: { variables: ["EXAI_DATA_DIR"] },
    });
    let calls = 0;
    const { error } = await settle(
      connectWithBackoff({
        windowEnd: now() + 10_000,
        signal: live(),
        open: async () => {
          calls++;
          throw new Error("EPERM");
        },
        classify: () => {
          throw unverified;
        },
      }),
    );
    expect(error).toBe(unverified);
    expect(calls).toBe(1);
  });
});

describe("shim OVER_CAPACITY retry", () => {
  const over = (retryAfter?: number) => ({
    error: {
      code: "OVER_CAPACITY",
      message: "over capacity",
      ...(retryAfter !== undefined ? { retry_after: retryAfter } : {}),
    },
  });

  it("re-sends after at least retry_after and returns the first other answer", async () => {
    const sends: number[] = [];
    const t0 = now();
    const pending = retryOverCapacity(
      { retries: 3, deadlineAt: t0 + 30_000, reserveMs: 250, signal: live(), random: () => 0 },
      async (attempt) => {
        sends.push(now() - t0);
        return attempt < 3 ? over(2) : { outputs: "done", error: undefined };
      },
    );
    await vi.advanceTimersByTimeAsync(4000);
    await expect(pending).resolves.toEqual({ outputs: "done" });
    expect(sends).toEqual([0, 2000, 4000]);
  });

  it("returns the daemon's last OVER_CAPACITY answer when the retries run out", async () => {
    let sends = 0;
    const pending = retryOverCapacity(
      { retries: 2, deadlineAt: now() + 30_000, reserveMs: 250, signal: live() },
      async () => {
        sends++;
        return over(0.5);
      },
    );
    await vi.advanceTimersByTimeAsync(10_000);
    await expect(pending).resolves.toEqual(over(0.5));
    expect(sends).toBe(3);
  });

  it("does not wait past the deadline minus the transit reserve", async () => {
    let sends = 0;
    const answer = await retryOverCapacity(
      { retries: 3, deadlineAt: now() + 2100, reserveMs: 250, signal: live() },
      async () => {
        sends++;
        return over(2);
      },
    );
    expect(answer).toEqual(over(2));
    expect(sends).toBe(1);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("passes an exchange failure through unchanged and stops on abort", async () => {
    const gone = new Error("daemon gone");
    await expect(
      retryOverCapacity(
        { retries: 3, deadlineAt: now() + 30_000, reserveMs: 0, signal: live() },
        async () => {
          throw gone;
        },
      ),
    ).rejects.toBe(gone);

    const controller = new AbortController();
    const pending = settle(
      retryOverCapacity(
        { retries: 3, deadlineAt: now() + 30_000, reserveMs: 0, signal: controller.signal },
        async () => over(5),
      ),
    );
    await vi.advanceTimersByTimeAsync(1000);
    controller.abort(
      new ExaiError("TIMEOUT", "the shim call timed out", { details: { layer: "shim", budget_s: 30 } }),
    );
    const { error } = await pending;
    expect(error?.code).toBe("TIMEOUT");
    expect(error?.details.layer).toBe("shim");
  });
});

describe("shim tool listing", () => {
  it("retries a failed listing twice after brief waits", async () => {
    const starts: number[] = [];
    const t0 = now();
    const pending = listToolsWithRetry(
      { deadlineAt: t0 + 30_000, signal: live(), random: () => 0.999 },
      async (attempt) => {
        starts.push(now() - t0);
        if (attempt < 3) throw new Error("the connection to the daemon closed");
        return ["chat"];
      },
    );
    await vi.advanceTimersByTimeAsync(1000);
    await expect(pending).resolves.toEqual(["chat"]);
    [0, 99.9, 299.7].forEach((start, index) =>
      expect(Math.abs((starts[index] as number) - start)).toBeLessThanOrEqual(2),
    );
    expect(starts).toHaveLength(3);
  });

  it("gives up after three attempts, and at once on a non-retryable error", async () => {
    let calls = 0;
    const pending = settle(
      listToolsWithRetry({ deadlineAt: now() + 30_000, signal: live() }, async () => {
        calls++;
        throw new Error("closed");
      }),
    );
    await vi.advanceTimersByTimeAsync(1000);
    expect((await pending).error?.details.attempts).toHaveLength(3);
    expect(calls).toBe(3);

    let finals = 0;
    const { error } = await settle(
      listToolsWithRetry({ deadlineAt: now() + 30_000, signal: live() }, async () => {
        finals++;
        throw new ExaiError("CONFIG_INVALID", "the daemon could not be verified", {
          details: { variables: ["EXAI_DATA_DIR"] },
        });
      }),
    );
    expect(error?.code).toBe("CONFIG_INVALID");
    expect(finals).toBe(1);
  });
});

describe("the shim's daemon link uses the connect backoff", () => {
  const dataDir = tempDir("exai-link-");
  afterAll(() => dataDir.cleanup());
  /** A transport whose every dial fails after the handshake started (kind "failed": no daemon start). */
  const failingTransport = (check: "ok" | "missing" | "unverified" = "ok") => {
    const dials: number[] = [];
    return {
      dials,
      transport: {
        verify: () =>
          check === "unverified"
            ? { kind: check, path: "memory", reason: "owned by uid 0" }
            : { kind: check, path: "memory" },
        dial: () => {
          dials.push(now());
          const socket = Object.assign(new EventEmitter(), {
            terminate: () => undefined,
            send: () => undefined,
          });
          setImmediate(() =>
            socket.emit("error", Object.assign(new Error("socket hang up"), { code: "EPIPE" })),
          );
          return socket as unknown as WebSocket;
        },
      },
    };
  };
  const link = (
    transport: ReturnType<typeof failingTransport>["transport"],
    windowMs: number,
    random = 0.999,
  ) =>
    createDaemonLink(
      makeConfig({ EXAI_DATA_DIR: dataDir.path }),
      { transport, connectWindowMs: windowMs, random: () => random },
      createLogger({ level: "silent" }),
    );

  it("retries a failing daemon with growing jittered waits until the window closes, then names it unreachable", async () => {
    const { dials, transport } = failingTransport();
    const t0 = now();
    const pending = settle(
      link(transport, 4000).connect({ spawn: true, deadlineAt: t0 + 60_000, signal: live() }),
    );
    await vi.advanceTimersByTimeAsync(5000);
    const { error } = await pending;
    // Waits of ~0.25, 0.5, 1, 2 s (capped): dials at ~0, 250, 750, 1750, 3750 ms; the next would pass 4 s.
    expect(dials.map((at) => Math.round((at - t0) / 50) * 50)).toEqual([0, 250, 750, 1750, 3750]);
    expect(error?.code).toBe("INTERNAL");
    expect(error?.details.reason).toBe("daemon_unreachable");
    expect(error?.message).toMatch(/unreachable \(socket hang up\)/);
    expect(error?.details.attempts).toHaveLength(5);
  });

  it("jitters the waits (full jitter: a draw of 0.5 halves every wait)", async () => {
    const { dials, transport } = failingTransport();
    const t0 = now();
    const pending = settle(
      link(transport, 2000, 0.5).connect({ spawn: true, deadlineAt: t0 + 60_000, signal: live() }),
    );
    await vi.advanceTimersByTimeAsync(3000);
    await pending;
    expect(dials.map((at) => Math.round((at - t0) / 25) * 25)).toEqual([0, 125, 375, 875, 1875]);
  });

  it("ends at once, without waiting, when the daemon cannot be verified or is gone", async () => {
    const unverified = failingTransport("unverified");
    const first = await settle(
      link(unverified.transport, 4000).connect({ spawn: true, deadlineAt: now() + 60_000, signal: live() }),
    );
    expect(first.error?.code).toBe("CONFIG_INVALID");
    expect(first.error?.details.variables).toEqual(["EXAI_DATA_DIR"]);

    const missing = failingTransport("missing");
    const gone = await link(missing.transport, 4000)
      .connect({ spawn: false, deadlineAt: now() + 60_000, signal: live() })
      .catch((error: unknown) => error);
    expect(gone).toBeInstanceOf(DaemonGone);
    expect(vi.getTimerCount()).toBe(0);
    expect(unverified.dials.length + missing.dials.length).toBe(0);
  });
});
