/**
 * The chaos matrix (SPEC §9): every fault, in both modes — in-process (`exai stdio`) and shared
 * daemon (`exai shim` → `exai daemon`) — through the official MCP SDK client over real stdio.
 * Each case asserts the outcome code, the time bound, that nothing is left in flight and that no
 * request ran twice (the provider saw exactly the attempts the retry policy allows).
 *
 * Budgets (time-scaled): tool 1.5 s; provider attempt 0.5 s; stream idle 0.3 s; 2 retries.
 * Bounds allow the pipeline's 50 ms plus SLACK_MS for stdio/WebSocket transit on a busy machine.
 */
import { afterEach, describe, expect, it } from "vitest";
import { startFakeProvider, type FakeProvider } from "../src/testing/fake-provider.js";
import {
  daemonFetch,
  expectAllSlotsFree,
  freePort,
  health,
  killDaemonOn,
  runCleanups,
  sleep,
  startDaemon,
  startShim,
  type Cleanup,
  type DaemonProcess,
} from "./support/daemon.js";
import {
  clock,
  connectStdioClient,
  fastEnv,
  providerEnv,
  structured,
  tempDir,
  type StdioClient,
} from "./support/harness.js";

const BUDGET_MS = 1500;
const SLACK_MS = 150;

const cleanups: Cleanup[] = [];
afterEach(() => runCleanups(cleanups));

type Mode = "in-process" | "daemon";

interface World {
  mode: Mode;
  fake: FakeProvider;
  client: StdioClient;
  env: Record<string, string | undefined>;
  http?: string;
  daemon?: DaemonProcess;
  /** Asserts that no call holds an admission slot any more. */
  expectIdle(): Promise<void>;
}

async function world(mode: Mode): Promise<World> {
  const fake = await startFakeProvider();
  const data = tempDir("exai-chaos-");
  cleanups.push(async () => {
    await fake.close();
    data.cleanup();
  });
  const port = await freePort();
  const env = fastEnv({
    ...providerEnv(fake),
    EXAI_DATA_DIR: data.path,
    SIMPLE_TOOL_TIMEOUT_SECS: String(BUDGET_MS / 1000),
    WORKFLOW_TOOL_TIMEOUT_SECS: "2",
    GLM_TIMEOUT_SECS: "0.5",
    KIMI_TIMEOUT_SECS: "0.5",
    CUSTOM_TIMEOUT_SECS: "0.5",
    KIMI_WEB_SEARCH_TIMEOUT_SECS: "0.5",
    EX_HTTP_TIMEOUT_SECONDS: "0.5",
    EX_STREAM_IDLE_TIMEOUT_SECS: "0.3",
    PROVIDER_MAX_RETRIES: "2",
    EXAI_WS_PROGRESS_INTERVAL_SECS: "0.2",
    EXPERT_HEARTBEAT_INTERVAL_SECS: "0.2",
    EXAI_WS_PORT: String(port),
    EXAI_WS_HOST: "127.0.0.1",
    EXAI_DAEMON_TEST_HOOKS: "1",
  });
  if (mode === "in-process") {
    const client = await connectStdioClient(env);
    cleanups.push(() => client.close());
    return {
      mode,
      fake,
      client,
      env,
      async expectIdle() {
        const status = structured(await client.client.callTool({ name: "status", arguments: {} }));
        const admission = status.admission as {
          global: { inflight: number };
          provider: Record<string, { inflight: number }>;
        };
        expect(admission.global.inflight).toBe(1); // the status call itself
        for (const cap of Object.values(admission.provider)) expect(cap.inflight).toBe(0);
      },
    };
  }
  const http = `http://127.0.0.1:${port}`;
  cleanups.push(() => killDaemonOn(http));
  const daemon = await startDaemon(env, http, cleanups);
  const client = await startShim(env, cleanups);
  await client.client.listTools(); // the shim is connected to the daemon before any fault starts
  return { mode, fake, client, env, http, daemon, expectIdle: () => expectAllSlotsFree(http) };
}

const chat = (prompt: string) => ({ name: "chat", arguments: { prompt, model: "glm-4.5-flash" } });

/** Calls chat and returns {payload, isError, elapsed ms}. */
async function timedChat(w: World, prompt: string, signal?: AbortSignal) {
  const started = clock();
  const result = (await w.client.client.callTool(
    chat(prompt),
    undefined,
    signal ? { signal } : undefined,
  )) as { isError?: boolean };
  return { payload: structured(result), isError: result.isError === true, elapsed: clock() - started };
}

/**
 * The provider saw exactly the attempts the error lists — nothing ran twice. (How many attempts fit
 * depends on the jittered backoff against the budget: 2 or 3 here.)
 */
function expectRequestsMatchAttempts(fake: FakeProvider, message: unknown): void {
  const listed = Number(/(\d+) attempts?:/.exec(String(message))?.[1] ?? 1);
  expect(fake.chatRequests()).toHaveLength(listed);
  expect(listed).toBeGreaterThanOrEqual(2);
  expect(listed).toBeLessThanOrEqual(3);
}

/** Every request the provider received has ended (answered or aborted): nothing still open. */
async function expectNoOpenRequests(fake: FakeProvider): Promise<void> {
  const deadline = clock() + 1000;
  while (
    fake.requests.some(
      (request) =>
        request.completedAt === undefined &&
        request.abortedAt === undefined &&
        request.faultApplied !== "reset",
    )
  ) {
    if (clock() > deadline) throw new Error("a provider request is still open");
    await sleep(10);
  }
}

describe.each<Mode>(["in-process", "daemon"])("chaos matrix, %s", (mode) => {
  it("provider hangs before headers → TIMEOUT within the tool budget; every attempt aborted", async () => {
    const w = await world(mode);
    w.fake.enqueue({ fault: { kind: "hang_before_headers" }, times: Infinity });
    const { payload, isError, elapsed } = await timedChat(w, "hang");
    expect(isError).toBe(true);
    expect(payload.code).toBe("TIMEOUT");
    expect(elapsed).toBeLessThan(BUDGET_MS + 50 + SLACK_MS);
    // 0.5 s attempts with backoff in between: at most 3 attempts fit, never more than the policy allows.
    expect(w.fake.chatRequests().length).toBeGreaterThanOrEqual(2);
    expect(w.fake.chatRequests().length).toBeLessThanOrEqual(3);
    await expectNoOpenRequests(w.fake);
    await w.expectIdle();
  });

  it("stream stalls mid-answer → TIMEOUT (idle) within the budget", async () => {
    const w = await world(mode);
    w.fake.enqueue({
      fault: { kind: "stall_after_chunks", chunks: 2 },
      reply: { content: "y".repeat(300), chunkSize: 10 },
      times: Infinity,
    });
    const { payload, elapsed } = await timedChat(w, "stall");
    expect(payload.code).toBe("TIMEOUT");
    // The idle timer ends each attempt; whether the last failure is an idle timeout or the tool
    // deadline depends on the jittered backoff — both are TIMEOUTs within the budget.
    expect(String(payload.message)).toMatch(/stream_idle|next stream chunk|tool budget/);
    expect(elapsed).toBeLessThan(BUDGET_MS + 50 + SLACK_MS);
    expect(w.fake.chatRequests().length).toBeLessThanOrEqual(3);
    await expectNoOpenRequests(w.fake);
    await w.expectIdle();
  });

  it("slow provider within the attempt timeout → success, one request", async () => {
    const w = await world(mode);
    w.fake.enqueue({ fault: { kind: "slow", delayMs: 300, chunkDelayMs: 20 } });
    const { payload, elapsed } = await timedChat(w, "slow");
    expect(payload.status).toBe("success");
    expect(elapsed).toBeGreaterThanOrEqual(300);
    expect(w.fake.chatRequests()).toHaveLength(1);
    await w.expectIdle();
  });

  it("429 storm → RATE_LIMITED after the attempts that fit, honouring Retry-After, within the budget", async () => {
    const w = await world(mode);
    w.fake.enqueue({
      fault: { kind: "status", status: 429, headers: { "retry-after": "0.2" } },
      times: Infinity,
    });
    const { payload, elapsed } = await timedChat(w, "rate limited");
    expect(payload.code).toBe("RATE_LIMITED");
    expectRequestsMatchAttempts(w.fake, payload.message);
    const [first, second] = w.fake.chatRequests();
    expect((second?.receivedAt ?? 0) - (first?.receivedAt ?? 0)).toBeGreaterThanOrEqual(195);
    expect(elapsed).toBeLessThan(BUDGET_MS + 50 + SLACK_MS);
    await w.expectIdle();
  });

  it("500 storm → PROVIDER_ERROR listing every attempt", async () => {
    const w = await world(mode);
    w.fake.enqueue({ fault: { kind: "status", status: 500 }, times: Infinity });
    const { payload, elapsed } = await timedChat(w, "server error");
    expect(payload.code).toBe("PROVIDER_ERROR");
    expect(String(payload.message)).toMatch(/#1 500 .*#2 500/);
    expectRequestsMatchAttempts(w.fake, payload.message);
    expect(elapsed).toBeLessThan(BUDGET_MS + 50 + SLACK_MS);
    await w.expectIdle();
  });

  it("connection reset → retried once, success, exactly 2 requests", async () => {
    const w = await world(mode);
    w.fake.enqueue({ fault: { kind: "reset" } });
    const { payload } = await timedChat(w, "reset");
    expect(payload.status).toBe("success");
    expect(w.fake.chatRequests()).toHaveLength(2);
    await w.expectIdle();
  });

  it("malformed JSON → PROVIDER_ERROR after the attempts that fit", async () => {
    const w = await world(mode);
    w.fake.enqueue({ fault: { kind: "malformed_json" }, times: Infinity });
    const { payload, elapsed } = await timedChat(w, "garbage");
    expect(payload.code).toBe("PROVIDER_ERROR");
    expectRequestsMatchAttempts(w.fake, payload.message);
    expect(elapsed).toBeLessThan(BUDGET_MS + 50 + SLACK_MS);
    await w.expectIdle();
  });

  it("client cancels → the provider request is aborted within 100 ms and not retried", async () => {
    const w = await world(mode);
    w.fake.enqueue({ fault: { kind: "hang_before_headers" } });
    const controller = new AbortController();
    const pending = timedChat(w, "cancel me", controller.signal);
    await w.fake.waitForRequests(1, 3000);
    const cancelledAt = clock();
    controller.abort();
    await expect(pending).rejects.toThrow();
    const deadline = clock() + 1000;
    while (w.fake.chatRequests()[0]?.abortedAt === undefined && clock() < deadline) await sleep(5);
    expect((w.fake.chatRequests()[0]?.abortedAt ?? Infinity) - cancelledAt).toBeLessThan(100);
    await sleep(300);
    expect(w.fake.chatRequests()).toHaveLength(1);
    await w.expectIdle();
  });
});

describe("chaos matrix, daemon only", () => {
  it("WebSocket dropped mid-call (daemon alive) → the shim reconnects, the call succeeds, the provider saw one request", async () => {
    const w = await world("daemon");
    w.fake.enqueue({ fault: { kind: "slow", delayMs: 400 } }); // inside the 0.5 s attempt timeout
    const pending = timedChat(w, "survive a drop");
    await w.fake.waitForRequests(1, 3000);
    const dropped = await daemonFetch(w.http as string, "/debug/drop-connections", { method: "POST" });
    expect(dropped.ok).toBe(true);
    const { payload, elapsed } = await pending;
    expect(payload.status).toBe("success");
    expect(elapsed).toBeLessThan(BUDGET_MS + SLACK_MS);
    expect(w.fake.chatRequests()).toHaveLength(1);
    await w.expectIdle();
  });

  it("daemon killed mid-call → a clear error within the shim budget; the next call starts a new daemon", async () => {
    const w = await world("daemon");
    w.fake.enqueue({ fault: { kind: "hang_before_headers" } });
    const pending = timedChat(w, "lose the daemon");
    await w.fake.waitForRequests(1, 3000);
    const firstPid = (await health(w.http as string)).pid;
    w.daemon?.child.kill("SIGKILL");
    const { payload, isError, elapsed } = await pending;
    expect(isError).toBe(true);
    expect(String(payload.message)).toMatch(/daemon/i);
    expect(elapsed).toBeLessThan(4000 + SLACK_MS); // the shim ceiling: 2 × workflow (2 s)
    const next = await timedChat(w, "after the crash");
    expect(next.payload.status).toBe("success");
    expect((await health(w.http as string)).pid).not.toBe(firstPid);
    expect(w.fake.chatRequests()).toHaveLength(2); // the lost call was not re-run on the new daemon
  });

  it("daemon frozen (SIGSTOP) → the shim's own ceiling fires with TIMEOUT saying so", async () => {
    const w = await world("daemon");
    w.daemon?.child.kill("SIGSTOP");
    cleanups.push(() => {
      w.daemon?.child.kill("SIGCONT");
    });
    const { payload, elapsed } = await timedChat(w, "anyone there?");
    w.daemon?.child.kill("SIGCONT");
    expect(payload).toMatchObject({ code: "TIMEOUT", layer: "shim" });
    expect(String(payload.message)).toMatch(/frozen/);
    expect(elapsed).toBeGreaterThanOrEqual(4000);
    expect(elapsed).toBeLessThan(4000 + 50 + SLACK_MS);
    expect(w.fake.chatRequests()).toHaveLength(0);
  });
});
