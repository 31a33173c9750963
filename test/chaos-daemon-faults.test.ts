/**
 * The faults only a shared daemon has, with real processes: a dropped WebSocket (the shim
 * re-attaches), a killed daemon (kill -9), a frozen one (SIGSTOP). The three cases run
 * concurrently: each has its own processes, provider and data directory, and most of their time is
 * spent waiting for a ceiling. Bounds: ./support/chaos.ts.
 */
import { describe, expect, it } from "vitest";
import { BUDGET_MS, SLACK_MS, timedChat, world } from "./support/chaos.js";
import { daemonFetch, health } from "./support/daemon.js";

describe.concurrent("chaos matrix, daemon only", () => {
  it("WebSocket dropped mid-call (daemon alive) → the shim reconnects, the call succeeds, the provider saw one request", async (context) => {
    // A 1.2 s attempt timeout leaves the 0.4 s slow answer a wide margin on a loaded machine: a
    // retry here would be the attempt timer's doing, not the drop's (the test counts requests).
    const attempt = { GLM_TIMEOUT_SECS: "1.2", KIMI_TIMEOUT_SECS: "1.2", EX_HTTP_TIMEOUT_SECONDS: "1.2" };
    const w = await world("daemon", context, attempt);
    w.fake.enqueue({ fault: { kind: "slow", delayMs: 400 } }); // well inside the attempt timeout
    const pending = timedChat(w, "survive a drop");
    await w.fake.waitForRequests(1, 3000);
    const dropped = await daemonFetch(w.http as string, "/debug/drop-connections", { method: "POST" });
    expect(dropped.ok).toBe(true);
    const { payload, elapsed } = await pending;
    expect(payload.status).toBe("success"); // so within the tool budget on the daemon's clock
    expect(elapsed).toBeLessThan(BUDGET_MS + SLACK_MS);
    expect(w.fake.chatRequests()).toHaveLength(1);
    await w.expectIdle();
  });

  it("daemon killed mid-call → a clear error within the shim budget; the next call starts a new daemon", async (context) => {
    const w = await world("daemon", context);
    w.fake.enqueue({ fault: { kind: "hang_before_headers" } });
    const pending = timedChat(w, "lose the daemon");
    await w.fake.waitForRequests(1, 3000);
    const firstPid = (await health(w.http as string)).pid;
    w.daemon?.child.kill("SIGKILL");
    const { payload, isError, elapsed } = await pending;
    expect(isError).toBe(true);
    expect(String(payload.message)).toMatch(/daemon/i);
    expect(elapsed).toBeLessThan(4000 + SLACK_MS); // well before the shim ceiling (2 × workflow, 2 s) ran out
    const next = await timedChat(w, "after the crash");
    expect(next.payload.status).toBe("success");
    expect((await health(w.http as string)).pid).not.toBe(firstPid);
    expect(w.fake.chatRequests()).toHaveLength(2); // the lost call was not re-run on the new daemon
  });

  it("daemon frozen (SIGSTOP) → the shim's own ceiling fires with TIMEOUT saying so", async (context) => {
    const w = await world("daemon", context);
    w.daemon?.child.kill("SIGSTOP");
    w.cleanups.push(() => {
      w.daemon?.child.kill("SIGCONT");
    });
    const { payload, elapsed } = await timedChat(w, "anyone there?");
    w.daemon?.child.kill("SIGCONT");
    // The shim's own ceiling (2 × workflow, 2 s) fired: its layer and budget, not a daemon answer.
    expect(payload).toMatchObject({ code: "TIMEOUT", layer: "shim", budget_s: 4 });
    expect(String(payload.message)).toMatch(/frozen/);
    expect(elapsed).toBeGreaterThanOrEqual(4000);
    expect(elapsed).toBeLessThan(4000 + SLACK_MS);
    expect(w.fake.chatRequests()).toHaveLength(0);
  });
});
