/**
 * The chaos matrix (SPEC §9): every fault, in both modes — in-process (`exai stdio`) and shared
 * daemon (`exai shim` → `exai daemon`) — through the official MCP SDK client over real stdio.
 * Each case asserts the outcome code, the time bound, that nothing is left in flight and that no
 * request ran twice (the provider saw exactly the attempts the retry policy allows).
 *
 * Budgets (time-scaled): tool 1.5 s; provider attempt 0.5 s; stream idle 0.3 s; 2 retries.
 * Time bounds are measured where the call ran: the CALL SUMMARY's duration_ms (the executor's
 * monotonic clock, in the server's log) is within the budget plus the pipeline's 50 ms. The
 * client's wall clock only gets a loose end-to-end bound (+1 s), so a loaded machine cannot break
 * them. Each case has its own processes, provider and data directory (removed when it ends); the
 * two modes are two test files (chaos-in-process, chaos-daemon), so they run side by side.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it, type TestContext } from "vitest";
import { startFakeProvider, type FakeProvider } from "../../src/testing/fake-provider.js";
import {
  expectAllSlotsFree,
  freePort,
  killDaemonOn,
  runCleanups,
  sleep,
  startDaemon,
  startShim,
  type Cleanup,
  type DaemonProcess,
} from "./daemon.js";
import {
  clock,
  connectStdioClient,
  fastEnv,
  providerEnv,
  structured,
  tempDir,
  type StdioClient,
} from "./harness.js";

export const BUDGET_MS = 1500;
/** The client's end-to-end slack over a server-side bound (stdio, WebSocket, process scheduling). */
export const SLACK_MS = 1000;
/** What the pipeline promises past a budget (SPEC §6.1), measured by the executor. */
const PIPELINE_MS = 50;

export type Mode = "in-process" | "daemon";

export interface World {
  mode: Mode;
  dataDir: string;
  /** Runs (in reverse) when the test ends. */
  cleanups: Cleanup[];
  fake: FakeProvider;
  client: StdioClient;
  env: Record<string, string | undefined>;
  http?: string;
  daemon?: DaemonProcess;
  /** Asserts that no call holds an admission slot any more. */
  expectIdle(): Promise<void>;
}

/** A fresh world for one test (`overrides` replace its environment defaults); its processes, provider and files are removed when the test ends. */
export async function world(
  mode: Mode,
  context: TestContext,
  overrides: Record<string, string> = {},
): Promise<World> {
  const cleanups: Cleanup[] = [];
  context.onTestFinished(() => runCleanups(cleanups));
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
    EXAI_LOG_LEVEL: "info", // the CALL SUMMARY lines the time bounds are read from
    ...overrides,
  });
  if (mode === "in-process") {
    const client = await connectStdioClient(env);
    cleanups.push(() => client.close());
    return {
      mode,
      dataDir: data.path,
      cleanups,
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
  return {
    mode,
    dataDir: data.path,
    cleanups,
    fake,
    client,
    env,
    http,
    daemon,
    expectIdle: () => expectAllSlotsFree(http),
  };
}

const chat = (prompt: string) => ({ name: "chat", arguments: { prompt, model: "glm-4.5-flash" } });

let traceCounter = 0;
export const nextTraceId = () => `chaos-${process.pid}-${++traceCounter}`;

/** Calls chat and returns {payload, isError, elapsed ms (client side), traceId}. */
export async function timedChat(w: World, prompt: string, signal?: AbortSignal, traceId = nextTraceId()) {
  const started = clock();
  const result = (await w.client.client.callTool(
    { ...chat(prompt), _meta: { trace_id: traceId } },
    undefined,
    signal ? { signal } : undefined,
  )) as { isError?: boolean };
  return {
    payload: structured(result),
    isError: result.isError === true,
    elapsed: clock() - started,
    traceId,
  };
}

/**
 * The CALL SUMMARY the executor logged for `traceId` (EXAI_DATA_DIR/logs/exai.log of the server
 * that ran the call: the stdio server, or the daemon). Polls up to 2 s (the log is buffered).
 */
export async function callSummary(w: World, traceId: string): Promise<Record<string, unknown>> {
  const file = join(w.dataDir, "logs", "exai.log");
  const deadline = clock() + 2000;
  for (;;) {
    let text = "";
    try {
      text = readFileSync(file, "utf8");
    } catch {
      // not written yet
    }
    for (const line of text.split("\n")) {
      if (!line.includes('"CALL SUMMARY"') || !line.includes(traceId)) continue;
      const entry = JSON.parse(line) as Record<string, unknown>;
      if (entry.trace_id === traceId && entry.msg === "CALL SUMMARY") return entry;
    }
    if (clock() > deadline) throw new Error(`no CALL SUMMARY for ${traceId} in ${file}`);
    await sleep(20);
  }
}

/**
 * The executor ended the call within the tool budget plus the pipeline's 50 ms, on its own clock
 * (the CALL SUMMARY's duration_ms), not counting how late the deadline's timer itself fired on a
 * starved machine (the TIMEOUT's late_ms). The client only gets a loose end-to-end bound.
 */
export async function expectWithinBudget(
  w: World,
  traceId: string,
  elapsed: number,
  payload: Record<string, unknown>,
): Promise<void> {
  const summary = await callSummary(w, traceId);
  expect(summary.budget_ms).toBe(BUDGET_MS);
  const late = typeof payload.late_ms === "number" ? payload.late_ms : 0;
  expect(Number(summary.duration_ms) - late).toBeLessThanOrEqual(BUDGET_MS + PIPELINE_MS);
  expect(elapsed).toBeLessThan(BUDGET_MS + PIPELINE_MS + SLACK_MS);
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

/** Defines the chaos matrix (every fault) for one mode. */
export function chaosMatrix(mode: Mode): void {
  describe(`chaos matrix, ${mode}`, () => {
    it("provider hangs before headers → TIMEOUT within the tool budget; every attempt aborted", async (context) => {
      const w = await world(mode, context);
      w.fake.enqueue({ fault: { kind: "hang_before_headers" }, times: Infinity });
      const { payload, isError, elapsed, traceId } = await timedChat(w, "hang");
      expect(isError).toBe(true);
      expect(payload.code).toBe("TIMEOUT");
      await expectWithinBudget(w, traceId, elapsed, payload);
      // 0.5 s attempts with backoff in between: at most 3 attempts fit, never more than the policy allows.
      expect(w.fake.chatRequests().length).toBeGreaterThanOrEqual(2);
      expect(w.fake.chatRequests().length).toBeLessThanOrEqual(3);
      await expectNoOpenRequests(w.fake);
      await w.expectIdle();
    });

    it("stream stalls mid-answer → TIMEOUT (idle) within the budget", async (context) => {
      const w = await world(mode, context);
      w.fake.enqueue({
        fault: { kind: "stall_after_chunks", chunks: 2 },
        reply: { content: "y".repeat(300), chunkSize: 10 },
        times: Infinity,
      });
      const { payload, elapsed, traceId } = await timedChat(w, "stall");
      expect(payload.code).toBe("TIMEOUT");
      // The idle timer ends each attempt; whether the last failure is an idle timeout or the tool
      // deadline depends on the jittered backoff — both are TIMEOUTs within the budget.
      expect(String(payload.message)).toMatch(/stream_idle|next stream chunk|tool budget/);
      await expectWithinBudget(w, traceId, elapsed, payload);
      expect(w.fake.chatRequests().length).toBeLessThanOrEqual(3);
      await expectNoOpenRequests(w.fake);
      await w.expectIdle();
    });

    it("slow provider within the attempt timeout → success, one request", async (context) => {
      const w = await world(mode, context);
      w.fake.enqueue({ fault: { kind: "slow", delayMs: 300, chunkDelayMs: 20 } });
      const { payload, elapsed } = await timedChat(w, "slow");
      expect(payload).toMatchObject({ status: "success" });
      expect(elapsed).toBeGreaterThanOrEqual(300);
      expect(w.fake.chatRequests()).toHaveLength(1);
      await w.expectIdle();
    });

    it("429 storm → RATE_LIMITED after the attempts that fit, honouring Retry-After, within the budget", async (context) => {
      const w = await world(mode, context);
      w.fake.enqueue({
        fault: { kind: "status", status: 429, headers: { "retry-after": "0.2" } },
        times: Infinity,
      });
      const { payload, elapsed, traceId } = await timedChat(w, "rate limited");
      expect(payload.code).toBe("RATE_LIMITED");
      expectRequestsMatchAttempts(w.fake, payload.message);
      const [first, second] = w.fake.chatRequests();
      expect((second?.receivedAt ?? 0) - (first?.receivedAt ?? 0)).toBeGreaterThanOrEqual(195);
      await expectWithinBudget(w, traceId, elapsed, payload);
      await w.expectIdle();
    });

    it("500 storm → PROVIDER_ERROR listing every attempt", async (context) => {
      const w = await world(mode, context);
      w.fake.enqueue({ fault: { kind: "status", status: 500 }, times: Infinity });
      const { payload, elapsed, traceId } = await timedChat(w, "server error");
      expect(payload.code).toBe("PROVIDER_ERROR");
      expect(String(payload.message)).toMatch(/#1 500 .*#2 500/);
      expectRequestsMatchAttempts(w.fake, payload.message);
      await expectWithinBudget(w, traceId, elapsed, payload);
      await w.expectIdle();
    });

    it("connection reset → retried once, success, exactly 2 requests", async (context) => {
      const w = await world(mode, context);
      w.fake.enqueue({ fault: { kind: "reset" } });
      const { payload } = await timedChat(w, "reset");
      expect(payload).toMatchObject({ status: "success" });
      expect(w.fake.chatRequests()).toHaveLength(2);
      await w.expectIdle();
    });

    it("malformed JSON → PROVIDER_ERROR after the attempts that fit", async (context) => {
      const w = await world(mode, context);
      w.fake.enqueue({ fault: { kind: "malformed_json" }, times: Infinity });
      const { payload, elapsed, traceId } = await timedChat(w, "garbage");
      expect(payload.code).toBe("PROVIDER_ERROR");
      expectRequestsMatchAttempts(w.fake, payload.message);
      await expectWithinBudget(w, traceId, elapsed, payload);
      await w.expectIdle();
    });

    it("client cancels → the server ends the call as CANCELLED, the provider request is aborted and not retried", async (context) => {
      const w = await world(mode, context);
      w.fake.enqueue({ fault: { kind: "hang_before_headers" } });
      const controller = new AbortController();
      const traceId = nextTraceId();
      const pending = timedChat(w, "cancel me", controller.signal, traceId);
      await w.fake.waitForRequests(1, 3000);
      controller.abort();
      await expect(pending).rejects.toThrow();
      const deadline = clock() + 1000;
      while (w.fake.chatRequests()[0]?.abortedAt === undefined && clock() < deadline) await sleep(5);
      expect(w.fake.chatRequests()[0]?.abortedAt).toBeDefined();
      // The server ended the call because of the cancel, not a timeout of its attempt or its budget.
      expect(await callSummary(w, traceId)).toMatchObject({ outcome: "error", error_code: "CANCELLED" });
      await sleep(300);
      expect(w.fake.chatRequests()).toHaveLength(1);
      await w.expectIdle();
    });
  });
}
