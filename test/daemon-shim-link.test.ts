/**
 * The shim's link to the daemon, in process (fast, deterministic): the shim's MCP server on an
 * in-memory transport with the official SDK client, an in-process daemon (or a scripted fake one),
 * and a TCP proxy that can freeze and cut a connection. Covers the file sandbox the shim sends
 * (client roots, else its cwd), frames the daemon rejects (BAD_FRAME with request_id, close 1009,
 * the 32 MiB limit), a socket that closes after another replaced it, and the transit margin.
 */
import { writeFileSync } from "node:fs";
import { createServer as createHttpServer } from "node:http";
import { dirname, join } from "node:path";
import { pathToFileURL } from "node:url";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import { ListRootsRequestSchema } from "@modelcontextprotocol/sdk/types.js";
import { afterEach, describe, expect, it } from "vitest";
import { WebSocketServer } from "ws";
import { createDaemon, type Daemon, type DaemonOptions } from "../src/daemon/server.js";
import { createLogger } from "../src/base/logging.js";
import { now } from "../src/timing/deadline.js";
import { createRuntime } from "../src/runtime/runtime.js";
import { createShimServer, transitMarginMs, type ShimServer } from "../src/shim/shim.js";
import { startFakeProvider, type FakeProvider } from "../src/testing/fake-provider.js";
import { runCleanups, startSocketProxy, type Cleanup } from "./support/daemon.js";
import { fastEnv, makeConfig, providerEnv, REPO_ROOT, structured, tempDir } from "./support/harness.js";

const cleanups: Cleanup[] = [];
afterEach(() => runCleanups(cleanups));

const silent = createLogger({ level: "silent" });

interface InProcessDaemon {
  daemon: Daemon;
  fake: FakeProvider;
}

async function startInProcessDaemon(options: Partial<DaemonOptions> = {}): Promise<InProcessDaemon> {
  const fake = await startFakeProvider();
  const data = tempDir("exai-link-daemon-");
  const config = makeConfig(fastEnv({ EXAI_DATA_DIR: data.path, ...providerEnv(fake) }), REPO_ROOT);
  const runtime = createRuntime(config, { mode: "daemon", logger: silent });
  const daemon = await createDaemon(config, { host: "127.0.0.1", port: 0, runtime, ...options });
  cleanups.push(async () => {
    await daemon.close({ drainMs: 0 });
    await runtime.close();
    await fake.close();
    data.cleanup();
  });
  return { daemon, fake };
}

interface InProcessShim {
  shim: ShimServer;
  client: Client;
  /** Replaces the client's roots and sends notifications/roots/list_changed. */
  setRoots(roots: string[]): Promise<void>;
}

/**
 * The shim's MCP server for the daemon whose socket is in `dataDir` (its EXAI_DATA_DIR), in `cwd`,
 * with an SDK client offering `roots` (if given).
 */
async function startInProcessShim(
  dataDir: string,
  options: { cwd?: string; roots?: string[] } = {},
): Promise<InProcessShim> {
  const config = makeConfig(fastEnv({ EXAI_DATA_DIR: dataDir }), options.cwd ?? REPO_ROOT);
  const shim = createShimServer(config, {
    logger: silent,
    connectWindowMs: 2000,
    cliPath: join(dataDir, "no-such-cli.js"), // never start a daemon from a test
  });
  let roots = options.roots;
  const client = new Client(
    { name: "exai-link-test", version: "1.0.0" },
    roots ? { capabilities: { roots: { listChanged: true } } } : undefined,
  );
  if (roots) {
    client.setRequestHandler(ListRootsRequestSchema, async () => ({
      roots: (roots ?? []).map((root) => ({ uri: pathToFileURL(root).href, name: root })),
    }));
  }
  const [clientTransport, serverTransport] = InMemoryTransport.createLinkedPair();
  await shim.server.connect(serverTransport);
  await client.connect(clientTransport);
  cleanups.push(async () => {
    await client.close();
    await shim.close();
  });
  return {
    shim,
    client,
    async setRoots(next) {
      roots = next;
      await client.sendRootsListChanged();
    },
  };
}

/** A temporary project directory with one file in it; returns the directory and the file. */
function project(prefix: string, name: string, content: string): { dir: string; file: string } {
  const dir = tempDir(prefix);
  cleanups.push(() => dir.cleanup());
  const file = join(dir.path, name);
  writeFileSync(file, content);
  return { dir: dir.path, file };
}

const chatFile = (file: string) => ({ name: "chat", arguments: { prompt: "read this", files: [file] } });

describe("shim: the file sandbox it sends with each call", () => {
  it("uses the MCP client's roots, and the new ones after roots/list_changed", async () => {
    const { daemon, fake } = await startInProcessDaemon();
    const a = project("exai-root-a-", "a.txt", "MARKER-A\n");
    const b = project("exai-root-b-", "b.txt", "MARKER-B\n");
    // The shim's own cwd is the repository: the client's roots take precedence over it.
    const { client, setRoots } = await startInProcessShim(dirname(daemon.socketPath), { roots: [a.dir] });
    expect(structured(await client.callTool(chatFile(a.file)))).toMatchObject({ status: "success" });
    expect(JSON.stringify(fake.chatRequests()[0]?.body)).toContain("MARKER-A");
    expect(structured(await client.callTool(chatFile(b.file)))).toMatchObject({ code: "FILE_ACCESS_DENIED" });
    expect(structured(await client.callTool(chatFile(join(REPO_ROOT, "package.json"))))).toMatchObject({
      code: "FILE_ACCESS_DENIED",
    });
    await setRoots([b.dir]);
    expect(structured(await client.callTool(chatFile(b.file)))).toMatchObject({ status: "success" });
    expect(structured(await client.callTool(chatFile(a.file)))).toMatchObject({ code: "FILE_ACCESS_DENIED" });
  });

  it("uses the shim's cwd when the client offers no roots", async () => {
    const { daemon } = await startInProcessDaemon();
    const here = project("exai-cwd-", "here.txt", "HERE\n");
    const { client } = await startInProcessShim(dirname(daemon.socketPath), { cwd: here.dir });
    expect(structured(await client.callTool(chatFile(here.file)))).toMatchObject({ status: "success" });
    // The daemon's own cwd (the repository) is not the sandbox of this client.
    expect(structured(await client.callTool(chatFile(join(REPO_ROOT, "package.json"))))).toMatchObject({
      code: "FILE_ACCESS_DENIED",
    });
  });
});

describe("shim: frames the daemon refuses fail their call at once", () => {
  it("BAD_FRAME naming the call's request_id → INVALID_ARGUMENT at once, not after the shim ceiling", async () => {
    const { daemon, fake } = await startInProcessDaemon();
    const { client } = await startInProcessShim(dirname(daemon.socketPath));
    const started = performance.now();
    const result = await client.callTool({ name: "x".repeat(300), arguments: {} });
    expect(performance.now() - started).toBeLessThan(1000); // the shim ceiling is 16 s here
    expect(result.isError).toBe(true);
    expect(structured(result)).toMatchObject({ code: "INVALID_ARGUMENT", daemon_code: "BAD_FRAME" });
    expect(String(structured(result).message)).toMatch(/rejected.*name/);
    expect(fake.chatRequests()).toHaveLength(0);
    // The connection lives on.
    expect(structured(await client.callTool({ name: "version", arguments: {} }))).toMatchObject({
      status: "success",
    });
  });

  it("arguments over the 32 MiB frame limit → INVALID_ARGUMENT before anything is sent", async () => {
    const { daemon, fake } = await startInProcessDaemon();
    const { client } = await startInProcessShim(dirname(daemon.socketPath));
    await client.listTools();
    const result = await client.callTool({
      name: "chat",
      arguments: { prompt: "z".repeat(33 * 1024 * 1024) },
    });
    expect(structured(result)).toMatchObject({ code: "INVALID_ARGUMENT", field: "arguments" });
    expect(String(structured(result).message)).toMatch(/32 MiB frame limit.*by path/);
    expect(fake.chatRequests()).toHaveLength(0);
  });

  it("close 1009 is final for the call that caused it; the other call on that socket is re-sent and succeeds", async () => {
    const { daemon, fake } = await startInProcessDaemon({ maxPayloadBytes: 128 * 1024 });
    fake.setDefaultDelay(800);
    const { client } = await startInProcessShim(dirname(daemon.socketPath));
    await client.listTools();
    const slow = client.callTool({ name: "chat", arguments: { prompt: "keep running" } });
    await fake.waitForRequests(1);
    const started = performance.now();
    const big = await client.callTool({ name: "chat", arguments: { prompt: "q".repeat(200 * 1024) } });
    expect(performance.now() - started).toBeLessThan(1000);
    expect(structured(big)).toMatchObject({ code: "INVALID_ARGUMENT", close_code: 1009 });
    expect(String(structured(big).message)).toMatch(/frame too large.*by path/);
    expect(structured(await slow)).toMatchObject({ status: "success" });
    expect(fake.chatRequests()).toHaveLength(1); // re-attached, not run twice; the big one never ran
  });
});

describe("shim: a socket that closes after another replaced it", () => {
  it("the calls sent on the old (CLOSING) socket still hear its close, reconnect and get their result", async () => {
    const { daemon, fake } = await startInProcessDaemon();
    fake.setDefaultDelay(800);
    const proxy = await startSocketProxy(daemon.socketPath, cleanups);
    const { client, shim } = await startInProcessShim(proxy.dataDir);
    await client.listTools();
    const slow = client.callTool({ name: "chat", arguments: { prompt: "sent on the old socket" } });
    await fake.waitForRequests(1);
    // The old socket starts closing, but its close handshake is lost on the way: it stays CLOSING.
    proxy.connections[0]?.freeze();
    const old = await shim.link.connect({
      spawn: false,
      deadlineAt: now() + 1000,
      signal: new AbortController().signal,
    });
    old.close();
    expect(old.readyState).toBe(old.CLOSING);
    // A new call opens a second socket, which becomes the current one.
    expect(structured(await client.callTool({ name: "version", arguments: {} }))).toMatchObject({
      status: "success",
    });
    expect(proxy.connections).toHaveLength(2);
    // Now the old socket closes for good.
    proxy.connections[0]?.cut();
    const outcome = await Promise.race([
      slow,
      new Promise<"hung">((resolve) => setTimeout(() => resolve("hung"), 4000)),
    ]);
    expect(outcome).not.toBe("hung");
    expect(structured(outcome)).toMatchObject({ status: "success" });
    expect(fake.chatRequests()).toHaveLength(1);
  });
});

describe("shim: transit margin", () => {
  it("is max(250 ms, 2 % of the budget)", () => {
    expect(transitMarginMs(2000)).toBe(250);
    expect(transitMarginMs(12_500)).toBe(250);
    expect(transitMarginMs(16_000)).toBe(320);
    expect(transitMarginMs(90_000)).toBe(1800);
  });

  it("sends deadline_ms = what is left of the shim budget minus the margin, and the roots", async () => {
    // A scripted daemon that records the call_tool frame and answers at once.
    const frames: Array<Record<string, unknown>> = [];
    const dir = tempDir("exai-scripted-");
    const server = createHttpServer();
    const wss = new WebSocketServer({ server });
    await new Promise<void>((resolve) => server.listen(join(dir.path, "daemon.sock"), resolve));
    cleanups.push(async () => {
      for (const ws of wss.clients) ws.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      await new Promise<void>((resolve) => server.close(() => resolve()));
      dir.cleanup();
    });
    wss.on("connection", (ws) => {
      ws.on("message", (raw) => {
        const frame = JSON.parse(String(raw)) as Record<string, unknown>;
        if (frame.op === "hello") {
          ws.send(JSON.stringify({ op: "hello_ack", ok: true, session_id: "s-1", server_version: "0" }));
        } else if (frame.op === "call_tool") {
          frames.push(frame);
          const requestId = frame.request_id;
          ws.send(
            JSON.stringify({ op: "call_tool_ack", request_id: requestId, trace_id: "t", timeout_s: 1 }),
          );
          ws.send(
            JSON.stringify({
              op: "call_tool_res",
              request_id: requestId,
              outputs: { content: [{ type: "text", text: "{}" }], structuredContent: {} },
              summary: {},
            }),
          );
        }
      });
    });
    const here = project("exai-margin-", "x.txt", "x\n");
    const { client } = await startInProcessShim(dir.path, { cwd: here.dir });
    await client.callTool({ name: "chat", arguments: { prompt: "p" } });
    expect(frames).toHaveLength(1);
    const budget = 16_000; // 2 × the 8 s workflow budget of fastEnv
    const deadline = frames[0]?.deadline_ms as number;
    expect(budget - deadline).toBeGreaterThanOrEqual(320);
    expect(budget - deadline).toBeLessThan(320 + 200);
    expect(frames[0]?.roots).toEqual([here.dir]);
  });
});
