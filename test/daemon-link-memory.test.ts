/**
 * The shim ↔ daemon protocol without processes or network sockets: the shim's MCP server (with the
 * official SDK client on an in-memory MCP transport) and its daemon link dialling the daemon's
 * connection handler over an in-memory WebSocket pair (./support/memory-link.ts), against an
 * in-process daemon and the fake provider. Request correlation, parallel calls and coalescing
 * across shims, re-attach after a dropped connection (the same request_id re-sent), a daemon gone
 * during a call, cancellation, backpressure (OVER_CAPACITY retries, a client that never reads),
 * progress, the file sandbox of the shim's project, and which layer's timeout fires.
 *
 * What only processes show (kill -9, SIGSTOP, the chaos matrix, another uid, a minimal
 * environment) stays in the process tests (chaos, daemon-trust*).
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import { afterEach, describe, expect, it } from "vitest";
import { createLogger } from "../src/base/logging.js";
import { createDaemon, type Daemon } from "../src/daemon/server.js";
import { createRuntime, type Runtime } from "../src/runtime/runtime.js";
import { createShimServer, type ShimServer } from "../src/shim/shim.js";
import { startFakeProvider, type FakeProvider } from "../src/testing/fake-provider.js";
import { runCleanups, slotCounts, sleep, type Cleanup } from "./support/daemon.js";
import { fastEnv, makeConfig, providerEnv, REPO_ROOT, structured, tempDir } from "./support/harness.js";
import { memoryLink, memorySocketPair, type MemoryLink } from "./support/memory-link.js";

const cleanups: Cleanup[] = [];
afterEach(() => runCleanups(cleanups));

const silent = createLogger({ level: "silent" });

interface Shim {
  client: Client;
  link: MemoryLink;
  shim: ShimServer;
}

interface World {
  fake: FakeProvider;
  daemon: Daemon;
  runtime: Runtime;
  dataDir: string;
  /** A shim (its MCP server with an SDK client) linked to the daemon in memory, in `cwd`. */
  shim(cwd?: string): Promise<Shim>;
  /** The daemon's /health details (TCP, with its token). */
  health(): Promise<Record<string, unknown>>;
}

async function world(env: Record<string, string> = {}): Promise<World> {
  const fake = await startFakeProvider();
  const data = tempDir("exai-memlink-");
  const shared = fastEnv({ EXAI_DATA_DIR: data.path, ...providerEnv(fake), ...env });
  const config = makeConfig(shared, REPO_ROOT);
  const runtime = createRuntime(config, { mode: "daemon", logger: silent });
  const daemon = await createDaemon(config, { host: "127.0.0.1", port: 0, runtime });
  cleanups.push(async () => {
    await daemon.close({ drainMs: 0 });
    await runtime.close();
    await fake.close();
    data.cleanup();
  });
  return {
    fake,
    daemon,
    runtime,
    dataDir: data.path,
    async shim(cwd = REPO_ROOT) {
      const link = memoryLink(daemon);
      const shim = createShimServer(makeConfig(shared, cwd), {
        logger: silent,
        transport: link,
        connectWindowMs: 2000,
        cliPath: join(data.path, "no-such-cli.js"), // never start a daemon from a test
      });
      const client = new Client({ name: "exai-memlink-test", version: "1.0.0" });
      const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
      await shim.server.connect(serverSide);
      await client.connect(clientSide);
      cleanups.push(async () => {
        await client.close();
        await shim.close();
      });
      return { client, link, shim };
    },
    async health() {
      const response = await fetch(`http://127.0.0.1:${daemon.port}/health`, {
        headers: { authorization: `Bearer ${daemon.token ?? ""}` },
      });
      return (await response.json()) as Record<string, unknown>;
    },
  };
}

const chat = (prompt: string) => ({ name: "chat", arguments: { prompt } });

/** The call_tool frames a shim sent on its link, over every socket it dialled, in order. */
const callFrames = (link: MemoryLink) =>
  link.sockets.flatMap((socket) => socket.sent.filter((frame) => frame.op === "call_tool"));

/** Resolves when the daemon holds no admission slot and runs no call (polls up to 2 s). */
async function expectIdle(w: World): Promise<void> {
  const deadline = performance.now() + 2000;
  for (;;) {
    const counts = slotCounts(await w.health());
    if (Object.values(counts).every((value) => value === 0)) return;
    if (performance.now() > deadline) throw new Error(`slots still held: ${JSON.stringify(counts)}`);
    await sleep(10);
  }
}

describe("request correlation and sharing", () => {
  it("runs 2 shims × 3 concurrent calls in parallel, each answered with its own result and trace_id", async () => {
    const w = await world({
      EXAI_WS_GLOBAL_MAX_INFLIGHT: "16",
      EXAI_WS_GLM_MAX_INFLIGHT: "16",
      EXAI_WS_KIMI_MAX_INFLIGHT: "16",
    });
    // Answers in the reverse order of the calls: a result matched to the wrong request would show.
    for (let index = 0; index < 6; index++)
      w.fake.enqueue({ match: { bodyIncludes: `parallel ${index}` }, delayMs: 300 - index * 40 });
    const shims = await Promise.all([w.shim(), w.shim()]);
    const results = await Promise.all(
      [0, 1, 2, 3, 4, 5].map((index) =>
        (shims[index % 2] as Shim).client.callTool({
          ...chat(`parallel ${index}`),
          _meta: { trace_id: `trace-parallel-${index}` },
        }),
      ),
    );
    results.forEach((result, index) => {
      const payload = structured(result);
      expect(payload).toMatchObject({ status: "success" });
      expect(String(payload.content)).toContain(`parallel ${index}`);
      expect((payload.metadata as Record<string, unknown>).trace_id).toBe(`trace-parallel-${index}`);
    });
    // In parallel: the provider received all six before it answered the first.
    const requests = w.fake.chatRequests();
    expect(requests).toHaveLength(6);
    const lastArrival = Math.max(...requests.map((request) => request.receivedAt));
    const firstAnswer = Math.min(...requests.map((request) => request.completedAt ?? Infinity));
    expect(lastArrival).toBeLessThan(firstAnswer);
    expect(requests.map((request) => request.headers["x-request-id"]).sort()).toEqual(
      [0, 1, 2, 3, 4, 5].map((index) => `trace-parallel-${index}`).sort(),
    );
    // One request_id per call, each on one socket.
    const ids = shims.flatMap((shim) => callFrames(shim.link).map((frame) => frame.request_id));
    expect(new Set(ids).size).toBe(6);
    // The tool-call log is written through a buffered stream: poll briefly for the last line.
    const logPath = join(w.dataDir, "logs", "toolcalls.jsonl");
    const deadline = performance.now() + 2000;
    let toolLog = "";
    while (!toolLog.includes('"trace_id":"trace-parallel-5"') && performance.now() < deadline) {
      await sleep(20);
      toolLog = readFileSync(logPath, "utf8");
    }
    expect(toolLog).toContain('"trace_id":"trace-parallel-5"');
  });

  it("coalesces identical calls from two shims into one provider request", async () => {
    const w = await world();
    w.fake.setDefaultDelay(200);
    const [a, b] = await Promise.all([w.shim(), w.shim()]);
    const [first, second] = await Promise.all([
      a.client.callTool(chat("same question")),
      b.client.callTool(chat("same question")),
    ]);
    expect(structured(first)).toMatchObject({ status: "success" });
    expect(structured(second).content).toBe(structured(first).content);
    expect(w.fake.chatRequests()).toHaveLength(1);
  });

  it("runs identical calls separately for a tool in EXAI_WS_DISABLE_COALESCE_FOR_TOOLS", async () => {
    const w = await world({ EXAI_WS_DISABLE_COALESCE_FOR_TOOLS: "chat" });
    w.fake.setDefaultDelay(200);
    const [a, b] = await Promise.all([w.shim(), w.shim()]);
    const results = await Promise.all([
      a.client.callTool(chat("same question")),
      b.client.callTool(chat("same question")),
    ]);
    for (const result of results) expect(structured(result)).toMatchObject({ status: "success" });
    expect(w.fake.chatRequests()).toHaveLength(2);
  });
});

describe("reconnect and re-attach", () => {
  it("re-sends the SAME request_id after the connection drops mid-call; the provider sees one request", async () => {
    const w = await world();
    w.fake.setDefaultDelay(400);
    const { client, link } = await w.shim();
    await client.listTools();
    const call = client.callTool(chat("survive a drop"));
    await w.fake.waitForRequests(1);
    link.sockets.at(-1)?.terminate();
    const result = await call;
    expect(structured(result)).toMatchObject({ status: "success" });
    expect(w.fake.chatRequests()).toHaveLength(1);
    expect(link.sockets).toHaveLength(2);
    const [sent, resent] = callFrames(link);
    expect(resent?.request_id).toBe(sent?.request_id);
    // The re-attached socket got the result; the session was resumed, not replaced.
    expect(link.sockets[1]?.peer.sent.some((frame) => frame.op === "call_tool_res")).toBe(true);
    const hellos = link.sockets.map((socket) => socket.sent.find((frame) => frame.op === "hello"));
    const acks = link.sockets.map((socket) => socket.peer.sent.find((frame) => frame.op === "hello_ack"));
    expect(hellos[1]?.session_id).toBe(acks[0]?.session_id);
    expect(acks[1]?.session_id).toBe(acks[0]?.session_id);
    expect((await w.health()).sessions).toMatchObject({ websocket: 1 });
    await expectIdle(w);
  });

  it("ends the call at once with INTERNAL daemon_gone when the reconnect is refused", async () => {
    const w = await world();
    w.fake.setDefaultDelay(2000);
    const { client, link } = await w.shim();
    await client.listTools();
    const call = client.callTool(chat("doomed"));
    await w.fake.waitForRequests(1);
    link.refuse = true;
    link.sockets.at(-1)?.terminate();
    const result = await call;
    expect(result.isError).toBe(true);
    const payload = structured(result);
    // INTERNAL (retryable), not CANCELLED: nobody cancelled it.
    expect(payload).toMatchObject({ code: "INTERNAL", reason: "daemon_gone", layer: "shim" });
    expect(String(payload.message)).toMatch(/went away/);
    expect(link.sockets).toHaveLength(2); // one refused reconnect, no retry loop
  });
});

describe("cancellation", () => {
  it("an MCP cancel becomes {op:'cancel'} for the call's request_id and aborts the provider request", async () => {
    const w = await world();
    w.fake.enqueue({ fault: { kind: "hang_before_headers" } });
    const { client, link } = await w.shim();
    const controller = new AbortController();
    const call = client.callTool(chat("never mind"), undefined, { signal: controller.signal });
    call.catch(() => undefined);
    await w.fake.waitForRequests(1);
    controller.abort("the user pressed Escape");
    await expect(call).rejects.toThrow();
    const deadline = performance.now() + 1000;
    while (w.fake.chatRequests()[0]?.abortedAt === undefined && performance.now() < deadline) await sleep(5);
    expect(w.fake.chatRequests()[0]?.abortedAt).toBeDefined();
    const [sent] = callFrames(link);
    const cancel = link.sockets.flatMap((socket) => socket.sent).find((frame) => frame.op === "cancel");
    expect(cancel).toEqual({ op: "cancel", request_id: sent?.request_id });
    await sleep(100);
    expect(w.fake.chatRequests()).toHaveLength(1); // not retried
    await expectIdle(w);
  });
});

describe("backpressure", () => {
  it("retries OVER_CAPACITY with jitter until all 5 calls over a cap of 2 succeed", async () => {
    const w = await world({ EXAI_WS_GLOBAL_MAX_INFLIGHT: "2" });
    w.fake.setDefaultDelay(300);
    const { client, link } = await w.shim();
    const results = await Promise.all(
      [0, 1, 2, 3, 4].map((index) => client.callTool(chat(`capacity ${index}`))),
    );
    for (const result of results) expect(structured(result)).toMatchObject({ status: "success" });
    expect(w.fake.chatRequests()).toHaveLength(5);
    expect(w.runtime.admission.rejections().global).toBeGreaterThan(0);
    // Every refusal was answered and retried under a fresh request_id.
    const refused = link.sockets
      .flatMap((socket) => socket.peer.sent)
      .filter((frame) => (frame.error as { code?: string } | undefined)?.code === "OVER_CAPACITY");
    expect(refused.length).toBeGreaterThan(0);
    expect(callFrames(link)).toHaveLength(5 + refused.length);
    await expectIdle(w);
  });

  it("closes a client that never reads its socket with 4008 once its backlog passes EXAI_WS_MAX_BACKLOG_MB", async () => {
    const w = await world({ EXAI_WS_MAX_BACKLOG_MB: "1" });
    const { client, server } = memorySocketPair();
    const closed = new Promise<number>((resolve) => client.on("close", (code: number) => resolve(code)));
    w.daemon.serve(server as never);
    await new Promise((resolve) => client.once("open", resolve));
    client.send(JSON.stringify({ op: "hello", client: { name: "stalled", version: "1" } }));
    await new Promise((resolve) => client.once("message", resolve)); // hello_ack
    client.pause();
    const listing = Buffer.byteLength(
      JSON.stringify({ op: "list_tools_res", tools: w.runtime.executor.tools() }),
    );
    const needed = Math.ceil((1024 * 1024) / Math.max(1, listing)) + 2;
    for (let index = 0; index < needed * 2; index++) client.send(JSON.stringify({ op: "list_tools" }));
    expect(await closed).toBe(4008);
    expect(server.bufferedAmount).toBeGreaterThan(1024 * 1024);
  });

  it("forwards daemon heartbeats as MCP progress (elapsed, remaining) and keeps a short client timeout alive", async () => {
    const w = await world({ EXAI_WS_PROGRESS_INTERVAL_SECS: "0.1" });
    w.fake.setDefaultDelay(700);
    const { client } = await w.shim();
    const progress: Array<{ progress: number; total?: number; message?: string }> = [];
    const result = await client.callTool(chat("slow answer"), undefined, {
      onprogress: (event) => progress.push(event),
      resetTimeoutOnProgress: true,
      timeout: 400,
    });
    expect(structured(result)).toMatchObject({ status: "success" });
    expect(progress.length).toBeGreaterThanOrEqual(3);
    for (let index = 1; index < progress.length; index++)
      expect(progress[index]?.progress).toBeGreaterThan(progress[index - 1]?.progress ?? 0);
    for (const event of progress) {
      expect(event.message).toMatch(/elapsed/);
      expect(event.message).toMatch(/left/);
    }
  });
});

describe("the shim's project and the layers", () => {
  it("sandboxes a call to the shim's cwd (its project), not the daemon's, when the client offers no roots", async () => {
    const w = await world();
    const project = tempDir("exai-project-");
    const elsewhere = tempDir("exai-elsewhere-");
    cleanups.push(() => project.cleanup());
    cleanups.push(() => elsewhere.cleanup());
    writeFileSync(join(project.path, "notes.txt"), "PROJECT-MARKER-5678\n");
    writeFileSync(join(elsewhere.path, "other.txt"), "not this project\n");
    const { client } = await w.shim(project.path); // the daemon's cwd is the repository
    const inside = await client.callTool({
      name: "chat",
      arguments: { prompt: "read", files: [join(project.path, "notes.txt")] },
    });
    expect(structured(inside)).toMatchObject({ status: "success" });
    expect(JSON.stringify(w.fake.chatRequests()[0]?.body)).toContain("PROJECT-MARKER-5678");
    const outside = await client.callTool({
      name: "chat",
      arguments: { prompt: "read", files: [join(elsewhere.path, "other.txt")] },
    });
    expect(outside.isError).toBe(true);
    expect(structured(outside)).toMatchObject({ code: "FILE_ACCESS_DENIED" });
    expect(String(structured(outside).message)).toContain(project.path);
  });

  it("with SIMPLE_TOOL_TIMEOUT_SECS=0.6, the tool layer's TIMEOUT (not the daemon's or the shim's) reaches the client", async () => {
    const w = await world({
      SIMPLE_TOOL_TIMEOUT_SECS: "0.6",
      WORKFLOW_TOOL_TIMEOUT_SECS: "0.6",
      EXPERT_HEARTBEAT_INTERVAL_SECS: "0.2",
      EXAI_WS_PROGRESS_INTERVAL_SECS: "0.2",
    });
    w.fake.enqueue({ fault: { kind: "hang_before_headers" }, times: Number.POSITIVE_INFINITY });
    const { client, link } = await w.shim();
    const result = await client.callTool(chat("hang"));
    expect(result.isError).toBe(true);
    expect(structured(result)).toMatchObject({ code: "TIMEOUT", layer: "tool", budget_s: 0.6 });
    // The daemon's own account: the call ended at its budget plus the pipeline's 50 ms, not
    // counting how late the deadline's timer fired (late_ms, reported with the TIMEOUT).
    const answer = link.sockets
      .flatMap((socket) => socket.peer.sent)
      .find((frame) => frame.op === "call_tool_res") as
      { summary?: { duration_ms?: number }; error?: { late_ms?: number } } | undefined;
    const duration = answer?.summary?.duration_ms ?? Infinity;
    expect(answer?.error?.late_ms).toEqual(expect.any(Number));
    expect(duration).toBeGreaterThanOrEqual(600);
    expect(duration - (answer?.error?.late_ms ?? 0)).toBeLessThanOrEqual(600 + 50);
  });
});
