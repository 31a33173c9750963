/**
 * The daemon's WebSocket protocol (SPEC §7), against an in-process daemon on a free port and raw
 * WebSocket clients: the hello handshake and its close codes, bad frames, request_id re-attach and
 * the result cache, explicit call_key DUPLICATE, OVER_CAPACITY at once, cancellation down to the
 * provider request, and every admission slot released whatever the outcome.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { createDaemon, type Daemon, type DaemonOptions } from "../src/daemon/server.js";
import { CLOSE_CODES, parseClientFrame, parseServerFrame } from "../src/mcp/frames.js";
import { createLogger } from "../src/base/logging.js";
import { createRuntime, type Runtime } from "../src/runtime/runtime.js";
import { listTools } from "../src/mcp/server.js";
import { startFakeProvider, type FakeProvider } from "../src/testing/fake-provider.js";
import { fastEnv, makeConfig, providerEnv, tempDir } from "./support/harness.js";

type Frame = Record<string, unknown> & { op: string };

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface TestDaemon {
  daemon: Daemon;
  runtime: Runtime;
  fake: FakeProvider;
  http: string;
}

async function startDaemon(
  env: Record<string, string> = {},
  options: Partial<DaemonOptions> = {},
): Promise<TestDaemon> {
  const fake = await startFakeProvider();
  const data = tempDir("exai-daemon-");
  const config = makeConfig(fastEnv({ EXAI_DATA_DIR: data.path, ...providerEnv(fake), ...env }));
  const runtime = createRuntime(config, { mode: "daemon", logger: createLogger({ level: "silent" }) });
  const daemon = await createDaemon(config, { host: "127.0.0.1", port: 0, runtime, ...options });
  cleanups.push(async () => {
    await daemon.close({ drainMs: 0 });
    await runtime.close();
    await fake.close();
    data.cleanup();
  });
  if (daemon.token !== undefined) tokens.set(`http://127.0.0.1:${daemon.port}`, daemon.token);
  return { daemon, runtime, fake, http: `http://127.0.0.1:${daemon.port}` };
}

/** The TCP token of each test daemon, by base URL. */
const tokens = new Map<string, string>();
/** fetch() options carrying the token of the daemon on `http`. */
const auth = (http: string): RequestInit => ({
  headers: tokens.has(http) ? { authorization: `Bearer ${tokens.get(http)}` } : {},
});

/** The daemon's Unix socket as a ws URL (the shim's way in: no token). */
const viaSocket = (daemon: Daemon) => `ws+unix://${daemon.socketPath}:/`;

/** The hello fields that resume the session `socket` was greeted with. */
function resumeOf(socket: TestSocket): { session_id: unknown; resume_secret: unknown } {
  const ack = socket.frames.find((frame) => frame.op === "hello_ack");
  return { session_id: ack?.session_id, resume_secret: ack?.resume_secret };
}

/** A raw WebSocket client that records every frame and can wait for one. */
class TestSocket {
  readonly frames: Frame[] = [];
  /** performance.now() at which each frame arrived. */
  readonly receivedAt = new Map<Frame, number>();
  readonly closed: Promise<{ code: number; reason: string }>;
  private readonly listeners = new Set<() => void>();

  constructor(readonly ws: WebSocket) {
    ws.on("message", (data) => {
      const frame = JSON.parse(String(data)) as Frame;
      this.frames.push(frame);
      this.receivedAt.set(frame, performance.now());
      for (const listener of this.listeners) listener();
    });
    ws.on("error", () => undefined); // close codes are what the tests look at
    this.closed = new Promise((resolve) =>
      ws.on("close", (code, reason) => resolve({ code, reason: reason.toString() })),
    );
  }

  send(frame: unknown): void {
    this.ws.send(typeof frame === "string" ? frame : JSON.stringify(frame));
  }

  /** Resolves with the first recorded frame matching `predicate` (waits up to `timeoutMs`). */
  waitFor(predicate: (frame: Frame) => boolean, timeoutMs = 3000): Promise<Frame> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const found = this.frames.find(predicate);
        if (!found) return false;
        clearTimeout(timer);
        this.listeners.delete(listener);
        resolve(found);
        return true;
      };
      const listener = () => void check();
      const timer = setTimeout(() => {
        this.listeners.delete(listener);
        reject(
          new Error(
            `no matching frame within ${timeoutMs} ms; got ${JSON.stringify(this.frames.map((f) => f.op))}`,
          ),
        );
      }, timeoutMs);
      if (!check()) this.listeners.add(listener);
    });
  }

  result(requestId: string, timeoutMs = 3000): Promise<Frame> {
    return this.waitFor((frame) => frame.op === "call_tool_res" && frame.request_id === requestId, timeoutMs);
  }
}

async function connect(url: string, hello: Record<string, unknown> | false = {}): Promise<TestSocket> {
  const ws = new WebSocket(url);
  const socket = new TestSocket(ws);
  cleanups.push(() => ws.terminate());
  await new Promise<void>((resolve, reject) => {
    ws.once("open", () => resolve());
    ws.once("error", reject);
  });
  if (hello !== false) {
    socket.send({ op: "hello", client: { name: "test", version: "1" }, ...hello });
    await socket.waitFor((frame) => frame.op === "hello_ack");
  }
  return socket;
}

const chat = (requestId: string, prompt: string, extra: Record<string, unknown> = {}) => ({
  op: "call_tool",
  request_id: requestId,
  name: "chat",
  arguments: { prompt },
  ...extra,
});

/** Resolves with the provider request's abortedAt (performance.now()), waiting up to 1 s for it. */
async function abortedAt(fake: FakeProvider, index = 0): Promise<number> {
  const deadline = performance.now() + 1000;
  for (;;) {
    const at = fake.chatRequests()[index]?.abortedAt;
    if (at !== undefined) return at;
    if (performance.now() > deadline) throw new Error("the provider request was not aborted");
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

async function health(http: string): Promise<Record<string, unknown>> {
  const response = await fetch(`${http}/health`, auth(http));
  return (await response.json()) as Record<string, unknown>;
}

/** Every cap of the admission snapshot is back at 0 in flight. */
async function expectAllSlotsFree(http: string): Promise<void> {
  const deadline = performance.now() + 2000;
  for (;;) {
    const inflight = (await health(http)).inflight as {
      global: { inflight: number };
      provider: Record<string, { inflight: number }>;
      tool: Record<string, { inflight: number }>;
      session: { inflight: number };
    };
    const busy = [
      inflight.global.inflight,
      ...Object.values(inflight.provider).map((cap) => cap.inflight),
      ...Object.values(inflight.tool).map((cap) => cap.inflight),
      inflight.session.inflight,
    ].some((value) => value !== 0);
    if (!busy) return;
    if (performance.now() > deadline)
      throw new Error(`admission slots still held: ${JSON.stringify(inflight)}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe("protocol frames (zod)", () => {
  it("validates client frames: BAD_FRAME for malformed or invalid, UNKNOWN_OP for other ops", () => {
    expect(parseClientFrame("{nope")).toMatchObject({ ok: false, code: "BAD_FRAME" });
    expect(parseClientFrame("[1,2]")).toMatchObject({ ok: false, code: "BAD_FRAME" });
    expect(parseClientFrame(JSON.stringify({ op: "tool_call" }))).toMatchObject({
      ok: false,
      code: "UNKNOWN_OP",
    });
    expect(parseClientFrame(JSON.stringify({ op: "call_tool", name: "chat" }))).toMatchObject({
      ok: false,
      code: "BAD_FRAME",
    });
    const parsed = parseClientFrame(
      JSON.stringify(chat("r-1", "hi", { deadline_ms: 1500, progress: false })),
    );
    expect(parsed).toMatchObject({
      ok: true,
      frame: { op: "call_tool", request_id: "r-1", deadline_ms: 1500 },
    });
    expect(parseServerFrame(JSON.stringify({ op: "progress", request_id: "r-1" }))).toMatchObject({
      ok: false,
    });
  });

  it("reports the request_id of a rejected frame when it is well formed; roots must be absolute", () => {
    expect(parseClientFrame(JSON.stringify({ op: "call_tool", request_id: "r-9", name: "" }))).toMatchObject({
      ok: false,
      code: "BAD_FRAME",
      requestId: "r-9",
    });
    expect(parseClientFrame(JSON.stringify({ op: "nope", request_id: "r-9" }))).toMatchObject({
      ok: false,
      code: "UNKNOWN_OP",
      requestId: "r-9",
    });
    const unreadable = parseClientFrame(JSON.stringify({ op: "call_tool", request_id: "bad id" }));
    expect(unreadable.ok).toBe(false);
    expect(unreadable).not.toHaveProperty("requestId");
    expect(parseClientFrame(JSON.stringify(chat("r-2", "hi", { roots: ["relative/dir"] })))).toMatchObject({
      ok: false,
      code: "BAD_FRAME",
      requestId: "r-2",
      message: expect.stringMatching(/roots/),
    });
    expect(parseClientFrame(JSON.stringify(chat("r-3", "hi", { roots: ["/abs/dir"] })))).toMatchObject({
      ok: true,
      frame: { roots: ["/abs/dir"] },
    });
    expect(
      parseServerFrame(JSON.stringify({ op: "error", code: "BAD_FRAME", message: "m", request_id: "r-3" })),
    ).toMatchObject({ ok: true, frame: { request_id: "r-3" } });
  });
});

describe("daemon hello handshake", () => {
  it("answers hello with hello_ack and lists the same tools as MCP tools/list", async () => {
    const { daemon, runtime } = await startDaemon();
    const socket = await connect(viaSocket(daemon));
    expect(socket.frames[0]).toMatchObject({
      op: "hello_ack",
      ok: true,
      session_id: expect.any(String),
      resume_secret: expect.stringMatching(/^[\w-]{43}$/),
    });
    socket.send({ op: "list_tools" });
    const listed = await socket.waitFor((frame) => frame.op === "list_tools_res");
    expect(listed.tools).toEqual(JSON.parse(JSON.stringify(listTools(runtime.executor.tools()))));
    socket.send({ op: "health" });
    expect(await socket.waitFor((frame) => frame.op === "health_res")).toMatchObject({ status: "ok" });
  });

  it("closes 4003 on a wrong token, 4001 on a missing one, 4000 on an invalid hello, 4002 without hello", async () => {
    const { daemon } = await startDaemon({ EXAI_WS_TOKEN: "s3cret-token" }, { helloTimeoutMs: 200 });
    const wrong = await connect(daemon.url, false);
    wrong.send({ op: "hello", token: "guess" });
    expect((await wrong.closed).code).toBe(CLOSE_CODES.UNAUTHORIZED);
    const missing = await connect(daemon.url, false);
    missing.send({ op: "hello" });
    expect((await missing.closed).code).toBe(CLOSE_CODES.TOKEN_MISSING);
    const invalid = await connect(daemon.url, false);
    invalid.send({ op: "list_tools" });
    expect((await invalid.closed).code).toBe(CLOSE_CODES.INVALID_HELLO);
    const silent = await connect(daemon.url, false);
    const started = performance.now();
    expect((await silent.closed).code).toBe(CLOSE_CODES.HELLO_TIMEOUT);
    expect(performance.now() - started).toBeLessThan(1000);
    const good = await connect(daemon.url, { token: "s3cret-token" });
    expect(good.frames[0]).toMatchObject({ op: "hello_ack" });
  });
});

describe("daemon bad input", () => {
  it("answers malformed JSON with BAD_FRAME and unknown ops with UNKNOWN_OP; the connection lives on", async () => {
    const { daemon } = await startDaemon();
    const socket = await connect(viaSocket(daemon));
    socket.send("{this is not json");
    expect(await socket.waitFor((frame) => frame.op === "error")).toMatchObject({ code: "BAD_FRAME" });
    socket.send({ op: "tool_call", request_id: "x" });
    expect(await socket.waitFor((frame) => frame.op === "error" && frame.code === "UNKNOWN_OP")).toBeTruthy();
    socket.send({ op: "call_tool", request_id: "bad id with spaces", name: "chat" });
    await socket.waitFor((frame) => frame.op === "error" && String(frame.message).includes("request_id"));
    // A readable request_id is echoed, so the client can fail that call at once.
    socket.send({ op: "call_tool", request_id: "r-bad-name", name: "x".repeat(300) });
    expect(await socket.waitFor((frame) => frame.request_id === "r-bad-name")).toMatchObject({
      op: "error",
      code: "BAD_FRAME",
      message: expect.stringMatching(/name/),
    });
    socket.send({ op: "list_tools" });
    expect(await socket.waitFor((frame) => frame.op === "list_tools_res")).toBeTruthy();
  });

  it("closes 1009 on a first frame over 64 KiB before the hello; after the hello big frames are fine", async () => {
    const { daemon } = await startDaemon();
    const early = await connect(viaSocket(daemon), false);
    const sent = performance.now();
    early.send({ op: "hello", client: { name: "x".repeat(100 * 1024), version: "1" } });
    expect((await early.closed).code).toBe(CLOSE_CODES.TOO_BIG);
    expect(performance.now() - sent).toBeLessThan(1500);
    expect(early.frames).toEqual([]);
    const greeted = await connect(viaSocket(daemon));
    greeted.send(chat("big-after-hello", "y".repeat(100 * 1024)));
    expect((await greeted.result("big-after-hello")).op).toBe("call_tool_res");
  });

  it("refuses an oversize frame with close 1009 and keeps serving", async () => {
    const { daemon, http } = await startDaemon({}, { maxPayloadBytes: 64 * 1024 });
    const socket = await connect(viaSocket(daemon));
    socket.send(chat("big", "x".repeat(128 * 1024)));
    expect((await socket.closed).code).toBe(CLOSE_CODES.TOO_BIG);
    expect((await health(http)).status).toBe("ok");
    const next = await connect(viaSocket(daemon));
    next.send({ op: "list_tools" });
    expect(await next.waitFor((frame) => frame.op === "list_tools_res")).toBeTruthy();
  });
});

describe("daemon calls", () => {
  it("acks at once, then returns outputs with the MCP content and structuredContent", async () => {
    const { daemon, fake } = await startDaemon();
    const socket = await connect(viaSocket(daemon));
    socket.send(chat("r-1", "hello daemon", { trace_id: "trace-0123456789" }));
    const ack = await socket.waitFor((frame) => frame.op === "call_tool_ack");
    expect(ack).toMatchObject({ request_id: "r-1", trace_id: "trace-0123456789", timeout_s: 3 });
    const result = await socket.result("r-1");
    const outputs = result.outputs as {
      content: Array<{ text: string }>;
      structuredContent: Record<string, unknown>;
    };
    expect(outputs.structuredContent).toMatchObject({ status: "success" });
    expect(JSON.parse(outputs.content[0]?.text ?? "{}")).toEqual(outputs.structuredContent);
    expect(result.summary).toMatchObject({ tool: "chat", trace_id: "trace-0123456789", outcome: "success" });
    expect(fake.chatRequests()[0]?.headers["x-request-id"]).toBe("trace-0123456789");
  });

  it("re-attaches a re-sent request_id to the running call and answers later ones from the cache", async () => {
    const { daemon, fake } = await startDaemon();
    fake.setDefaultDelay(400);
    const first = await connect(viaSocket(daemon));
    first.send(chat("r-attach", "only once"));
    await first.waitFor((frame) => frame.op === "call_tool_ack");
    first.ws.terminate(); // the connection drops mid-call; the call keeps running for a grace period
    const second = await connect(viaSocket(daemon), resumeOf(first));
    second.send(chat("r-attach", "only once"));
    const attached = await second.result("r-attach");
    expect(attached.outputs).toBeDefined();
    const third = await connect(viaSocket(daemon), resumeOf(first));
    third.send(chat("r-attach", "only once"));
    const cached = await third.result("r-attach", 200);
    expect(cached.outputs).toEqual(attached.outputs);
    expect(fake.chatRequests()).toHaveLength(1);
  });

  it("answers DUPLICATE to a request_id re-sent by another session or with other arguments; only the owner may cancel", async () => {
    const { daemon, fake } = await startDaemon();
    fake.setDefaultDelay(600);
    const owner = await connect(viaSocket(daemon));
    owner.send(chat("r-owned", "mine"));
    await owner.waitFor((frame) => frame.op === "call_tool_ack");
    const stranger = await connect(viaSocket(daemon));
    stranger.send(chat("r-owned", "mine"));
    expect((await stranger.result("r-owned")).error).toMatchObject({
      code: "DUPLICATE",
      original_request_id: "r-owned",
    });
    stranger.send({ op: "cancel", request_id: "r-owned" }); // ignored: not its call
    const reused = await connect(viaSocket(daemon), resumeOf(owner));
    reused.send(chat("r-owned", "other arguments"));
    expect((await reused.result("r-owned")).error).toMatchObject({ code: "DUPLICATE" });
    const result = await owner.result("r-owned");
    expect(result.outputs).toBeDefined();
    // Finished: the cached result is the owner's only.
    const late = await connect(viaSocket(daemon));
    late.send(chat("r-owned", "mine"));
    expect((await late.result("r-owned")).error).toMatchObject({ code: "DUPLICATE" });
    expect(fake.chatRequests()).toHaveLength(1);
    expect(fake.chatRequests()[0]?.abortedAt).toBeUndefined();

    // The owner's session may cancel, even from a new connection (a shim reconnect).
    fake.setDefaultDelay(2000);
    owner.send(chat("r-cancel-later", "cancel me from elsewhere"));
    await fake.waitForRequests(2);
    const reconnected = await connect(viaSocket(daemon), resumeOf(owner));
    reconnected.send({ op: "cancel", request_id: "r-cancel-later" });
    expect((await owner.result("r-cancel-later")).error).toMatchObject({ code: "CANCELLED" });
  });

  it("passes call_tool roots to the file sandbox instead of the daemon's cwd", async () => {
    const { daemon, fake } = await startDaemon();
    const project = tempDir("exai-roots-");
    const other = tempDir("exai-roots-other-");
    cleanups.push(() => project.cleanup());
    cleanups.push(() => other.cleanup());
    writeFileSync(join(project.path, "notes.txt"), "ROOTS-MARKER-1234\n");
    writeFileSync(join(other.path, "secret-plan.txt"), "not yours\n");
    const socket = await connect(viaSocket(daemon));
    const files = (file: string) => ({ prompt: "read", files: [file] });
    socket.send({
      ...chat("r-in", ""),
      arguments: files(join(project.path, "notes.txt")),
      roots: [project.path],
    });
    const inside = await socket.result("r-in");
    expect(inside.outputs).toBeDefined();
    expect(JSON.stringify(fake.chatRequests()[0]?.body)).toContain("ROOTS-MARKER-1234");
    socket.send({
      ...chat("r-out", ""),
      arguments: files(join(other.path, "secret-plan.txt")),
      roots: [project.path],
    });
    expect((await socket.result("r-out")).error).toMatchObject({ code: "FILE_ACCESS_DENIED" });
    // Without roots, the daemon's cwd (the repository here) is the sandbox.
    socket.send({ ...chat("r-none", ""), arguments: files(join(project.path, "notes.txt")) });
    expect((await socket.result("r-none")).error).toMatchObject({ code: "FILE_ACCESS_DENIED" });
  });

  it("aborts a call whose client disconnected and did not come back within the grace period", async () => {
    const { daemon, fake, http } = await startDaemon({}, { reconnectGraceMs: 100 });
    fake.setDefaultDelay(2000);
    const socket = await connect(viaSocket(daemon));
    socket.send(chat("r-gone", "abandoned"));
    await fake.waitForRequests(1);
    const dropped = performance.now();
    socket.ws.terminate();
    await expectAllSlotsFree(http);
    // Aborted after the grace period (timers never fire early), long before the 2 s answer.
    expect((await abortedAt(fake)) - dropped).toBeGreaterThanOrEqual(99);
    expect(fake.chatRequests()[0]?.completedAt).toBeUndefined();
  });

  it("answers DUPLICATE with original_request_id at once for an explicit call_key already in flight", async () => {
    const { daemon, fake } = await startDaemon();
    fake.setDefaultDelay(300);
    const a = await connect(viaSocket(daemon));
    const b = await connect(viaSocket(daemon));
    a.send(chat("r-first", "one", { call_key: "key-42" }));
    await a.waitFor((frame) => frame.op === "call_tool_ack");
    b.send(chat("r-second", "two", { call_key: "key-42" }));
    const duplicate = await b.result("r-second");
    expect(duplicate.error).toMatchObject({ code: "DUPLICATE", original_request_id: "r-first" });
    const first = await a.result("r-first");
    expect(first.outputs).toBeDefined();
    // "At once": the refusal came while the first call was still running.
    expect(b.receivedAt.get(duplicate) ?? Infinity).toBeLessThan(a.receivedAt.get(first) ?? 0);
    const metrics = await (
      await fetch(`http://127.0.0.1:${daemon.port}/metrics`, auth(`http://127.0.0.1:${daemon.port}`))
    ).text();
    expect(metrics).toMatch(/exai_rejections_total\{reason="DUPLICATE",cap="call_key"\} 1/);
  });

  it("refuses calls over the global cap at once with OVER_CAPACITY and retry_after, and counts them", async () => {
    const { daemon, fake, http } = await startDaemon({
      EXAI_WS_GLOBAL_MAX_INFLIGHT: "2",
      EXAI_WS_GLM_MAX_INFLIGHT: "10",
      EXAI_WS_KIMI_MAX_INFLIGHT: "10",
    });
    fake.setDefaultDelay(300);
    const socket = await connect(viaSocket(daemon));
    const sent = performance.now();
    for (let index = 0; index < 5; index++) socket.send(chat(`r-${index}`, `distinct prompt ${index}`));
    const refused: Frame[] = [];
    for (let index = 0; index < 5; index++) {
      const frame = await socket.result(`r-${index}`, 3000);
      if ((frame.error as { code?: string } | undefined)?.code === "OVER_CAPACITY") refused.push(frame);
    }
    expect(refused).toHaveLength(3);
    for (const frame of refused)
      expect((frame.error as { retry_after: number }).retry_after).toBeGreaterThan(0);
    // "At once": every refusal arrived before either admitted call ended.
    const admitted = [0, 1, 2, 3, 4]
      .map((index) =>
        socket.frames.find((frame) => frame.op === "call_tool_res" && frame.request_id === `r-${index}`),
      )
      .filter((frame) => frame !== undefined && !refused.includes(frame));
    expect(admitted).toHaveLength(2);
    const firstAdmittedAt = Math.min(...admitted.map((frame) => socket.receivedAt.get(frame as Frame) ?? 0));
    for (const frame of refused)
      expect(socket.receivedAt.get(frame) ?? Infinity).toBeLessThan(firstAdmittedAt);
    expect(performance.now() - sent).toBeGreaterThanOrEqual(299); // the two admitted calls took their 0.3 s
    const metrics = await (await fetch(`${http}/metrics`, auth(http))).text();
    expect(metrics).toMatch(/exai_rejections_total\{reason="OVER_CAPACITY",cap="global"\} 3/);
    expect(metrics).toMatch(/exai_calls_total\{tool="chat",outcome="OVER_CAPACITY"\} 3/);
    expect(metrics).toMatch(/exai_calls_total\{tool="chat",outcome="success"\} 2/);
    await expectAllSlotsFree(http);
  });

  it("returns OVER_CAPACITY within milliseconds, not after the running calls", async () => {
    const { daemon, fake } = await startDaemon({ EXAI_WS_GLOBAL_MAX_INFLIGHT: "1" });
    fake.setDefaultDelay(300);
    const socket = await connect(viaSocket(daemon));
    socket.send(chat("busy", "first"));
    await fake.waitForRequests(1);
    socket.send(chat("extra", "second"));
    const refused = await socket.result("extra");
    expect(refused.error).toMatchObject({ code: "OVER_CAPACITY" });
    const busy = await socket.result("busy");
    expect(socket.receivedAt.get(refused) ?? Infinity).toBeLessThan(socket.receivedAt.get(busy) ?? 0);
  });

  it("cancel aborts the provider request and releases every slot", async () => {
    const { daemon, fake, http } = await startDaemon();
    fake.setDefaultDelay(2000);
    const socket = await connect(viaSocket(daemon));
    socket.send(chat("r-cancel", "cancel me"));
    await fake.waitForRequests(1);
    socket.send({ op: "cancel", request_id: "r-cancel" });
    const result = await socket.result("r-cancel");
    expect(result.error).toMatchObject({ code: "CANCELLED" });
    await abortedAt(fake); // the provider request was aborted, not answered
    expect(fake.chatRequests()[0]?.completedAt).toBeUndefined();
    await expectAllSlotsFree(http);
  });

  it("releases every slot after success, provider error and timeout", async () => {
    const { daemon, fake, http } = await startDaemon({
      SIMPLE_TOOL_TIMEOUT_SECS: "0.5",
      EXPERT_HEARTBEAT_INTERVAL_SECS: "0.2",
      EXAI_WS_PROGRESS_INTERVAL_SECS: "0.2",
    });
    const socket = await connect(viaSocket(daemon));
    socket.send(chat("ok", "fine"));
    expect((await socket.result("ok")).outputs).toBeDefined();
    await expectAllSlotsFree(http);
    fake.enqueue({ fault: { kind: "status", status: 400 } });
    socket.send(chat("err", "bad request"));
    expect((await socket.result("err")).error).toMatchObject({ code: "PROVIDER_ERROR" });
    await expectAllSlotsFree(http);
    fake.enqueue({ fault: { kind: "hang_before_headers" }, times: 5 });
    socket.send(chat("slow", "hangs"));
    expect((await socket.result("slow")).error).toMatchObject({ code: "TIMEOUT", layer: "tool" });
    await expectAllSlotsFree(http);
    const metrics = await (await fetch(`${http}/metrics`, auth(http))).text();
    expect(metrics).toMatch(/exai_timeouts_total\{layer="tool"\} 1/);
    expect(metrics).toMatch(/exai_provider_requests_total\{provider="glm",status="400"\} 1/);
  });

  it("uses deadline_ms as the caller's budget (TIMEOUT names the client layer)", async () => {
    const { daemon, fake } = await startDaemon();
    fake.enqueue({ fault: { kind: "hang_before_headers" } });
    const socket = await connect(viaSocket(daemon));
    socket.send(chat("tight", "hurry", { deadline_ms: 300 }));
    const ack = await socket.waitFor((frame) => frame.op === "call_tool_ack");
    expect(ack.timeout_s).toBe(0.3);
    const result = await socket.result("tight");
    expect(result.error).toMatchObject({ code: "TIMEOUT", layer: "client" });
    // The executor's own account: it ended the call at the caller's deadline (+ the pipeline's 50 ms).
    const summary = result.summary as { duration_ms: number; budget_ms: number };
    expect(summary.budget_ms).toBe(300);
    expect(summary.duration_ms).toBeGreaterThanOrEqual(299);
    expect(summary.duration_ms).toBeLessThanOrEqual(300 + 50);
  });
});
