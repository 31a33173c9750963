/**
 * The daemon's HTTP side (SPEC §7): /health, /metrics, and /mcp — MCP Streamable HTTP with
 * sessions, progress over SSE, Host-header validation and the bearer token — plus the secrets
 * rule (the token never reaches a log) and graceful shutdown on SIGTERM, with a real process.
 */
import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import http from "node:http";
import { join } from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { afterEach, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { listTools } from "../src/mcp/server.js";
import { startFakeProvider } from "../src/testing/fake-provider.js";
import {
  freePort,
  runCleanups,
  slotCounts,
  startInProcessDaemon,
  type Cleanup,
  type InProcessDaemon,
} from "./support/daemon.js";
import {
  CLI,
  fastEnv,
  providerEnv,
  REPO_ROOT,
  structured,
  tempDir,
  initializeRequest,
} from "./support/harness.js";

const cleanups: Cleanup[] = [];
afterEach(() => runCleanups(cleanups));

type TestDaemon = InProcessDaemon;

async function startDaemon(env: Record<string, string> = {}): Promise<TestDaemon> {
  const started = await startInProcessDaemon(cleanups, { env, prefix: "exai-http-" });
  if (started.daemon.token !== undefined) tokens.set(started.base, started.daemon.token);
  return started;
}

/** The TCP token of each test daemon, by base URL. */
const tokens = new Map<string, string>();
/** The Authorization header of the daemon on `base`. */
const auth = (base: string): Record<string, string> =>
  tokens.has(base) ? { authorization: `Bearer ${tokens.get(base)}` } : {};

async function mcpClient(base: string, headers: Record<string, string> = auth(base)): Promise<Client> {
  const transport = new StreamableHTTPClientTransport(new URL(`${base}/mcp`), { requestInit: { headers } });
  const client = new Client({ name: "exai-http-test", version: "1.0.0" });
  await client.connect(transport);
  cleanups.push(() => client.close());
  return client;
}

/** A raw HTTP request (fetch does not let a test set the Host header). */
function rawRequest(
  url: string,
  options: { method: string; headers: Record<string, string>; body?: string },
): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const request = http.request(url, { method: options.method, headers: options.headers }, (response) => {
      let body = "";
      response.on("data", (chunk: Buffer) => (body += chunk.toString()));
      response.on("end", () =>
        resolve({ status: response.statusCode ?? 0, body, headers: response.headers }),
      );
    });
    request.on("error", reject);
    request.setTimeout(2000, () => request.destroy(new Error("request timed out")));
    request.end(options.body);
  });
}

const initialize = JSON.stringify(initializeRequest("raw"));
const mcpHeaders = { "content-type": "application/json", accept: "application/json, text/event-stream" };

describe("daemon HTTP: /health and /metrics", () => {
  it("/health reports status, uptime, inflight per cap, sessions, providers and version", async () => {
    const { base } = await startDaemon();
    const response = await fetch(`${base}/health`, { headers: auth(base) });
    expect(response.headers.get("content-type")).toMatch(/application\/json/);
    const body = (await response.json()) as Record<string, unknown>;
    expect(body).toMatchObject({
      status: "ok",
      version: expect.any(String),
      uptime_s: expect.any(Number),
      sessions: { websocket: 0, mcp: 0 },
      providers: expect.arrayContaining(["glm", "kimi"]),
      inflight: { global: { inflight: 0, cap: 16 } },
    });
    // The chaos tests' idle check reads these counts; a /health of another shape fails it.
    expect(slotCounts(body)).toMatchObject({ global: 0, session: 0, calls: 0 });
    expect(() => slotCounts({ ...body, inflight: { ...(body.inflight as object), global: 0 } })).toThrow(
      /global\.inflight/,
    );
    expect(() => slotCounts({ status: "ok" })).toThrow(/inflight/);
    // Without the token: liveness only.
    expect(await (await fetch(`${base}/health`)).json()).toEqual({
      status: "ok",
      version: expect.any(String),
    });
  });

  it("/metrics serves Prometheus text from the daemon's own registry", async () => {
    const { base } = await startDaemon();
    const client = await mcpClient(base);
    await client.callTool({ name: "chat", arguments: { prompt: "count me" } });
    const response = await fetch(`${base}/metrics`, { headers: auth(base) });
    expect(response.headers.get("content-type")).toMatch(/text\/plain/);
    const text = await response.text();
    expect(text).toMatch(/exai_calls_total\{tool="chat",outcome="success"\} 1/);
    expect(text).toMatch(/exai_call_duration_seconds_count\{tool="chat"\} 1/);
    expect(text).toMatch(/exai_calls_inflight 0/);
    expect(text).toMatch(/exai_provider_requests_total\{provider="glm",status="ok"\} 1/);
    expect(text).toMatch(/exai_sessions\{transport="mcp"\} 1/);
    expect(text).not.toMatch(/process_cpu/); // not prom-client's global default registry
  });

  it("labels calls of an unknown tool `unknown` (bounded series) and a known one by its normalised name", async () => {
    const { base } = await startDaemon();
    const client = await mcpClient(base);
    await client.callTool({ name: "made_up_tool_1234", arguments: {} });
    await client.callTool({ name: "version_EXAI-WS", arguments: {} });
    const text = await (await fetch(`${base}/metrics`, { headers: auth(base) })).text();
    expect(text).toMatch(/exai_calls_total\{tool="unknown",outcome="INVALID_ARGUMENT"\} 1/);
    expect(text).toMatch(/exai_calls_total\{tool="version",outcome="success"\} 1/);
    expect(text).not.toContain("made_up_tool_1234");
    expect(text).not.toContain("EXAI-WS");
  });

  it("refuses /health and /metrics with a foreign Host header or Origin (403), like /mcp", async () => {
    const { base, daemon } = await startDaemon();
    for (const path of ["/health", "/metrics"]) {
      const evil = await rawRequest(`${base}${path}`, {
        method: "GET",
        headers: { host: "evil.example.com" },
      });
      expect(evil.status).toBe(403);
      expect(JSON.parse(evil.body)).toMatchObject({ error: expect.stringMatching(/Host/) });
      const origin = await rawRequest(`${base}${path}`, {
        method: "GET",
        headers: { host: `localhost:${daemon.port}`, origin: "https://evil.example.com" },
      });
      expect(origin.status).toBe(403);
      const local = await rawRequest(`${base}${path}`, {
        method: "GET",
        headers: { host: `localhost:${daemon.port}`, ...auth(base) },
      });
      expect(local.status).toBe(200);
      const own = await rawRequest(`${base}${path}`, {
        method: "GET",
        headers: {
          host: `127.0.0.1:${daemon.port}`,
          origin: `http://127.0.0.1:${daemon.port}`,
          ...auth(base),
        },
      });
      expect(own.status).toBe(200);
    }
  });
});

describe("daemon HTTP: /mcp (Streamable HTTP)", () => {
  it("serves tools/list and tools/call with progress over SSE, one session per client", async () => {
    const { base, runtime, fake } = await startDaemon({
      EXAI_WS_PROGRESS_INTERVAL_SECS: "0.2",
      EXPERT_HEARTBEAT_INTERVAL_SECS: "0.2",
    });
    fake.setDefaultDelay(1000);
    const client = await mcpClient(base);
    const listed = await client.listTools();
    expect(listed.tools.map((tool) => tool.name)).toEqual(
      listTools(runtime.executor.tools()).map((tool) => tool.name),
    );
    const progress: number[] = [];
    const result = await client.callTool(
      { name: "chat", arguments: { prompt: "over http" }, _meta: { trace_id: "trace-http-0001" } },
      undefined,
      { onprogress: (event) => progress.push(event.progress) },
    );
    expect(structured(result)).toMatchObject({ status: "success" });
    expect(progress.length).toBeGreaterThanOrEqual(3);
    expect(fake.chatRequests()[0]?.headers["x-request-id"]).toBe("trace-http-0001");
    const second = await mcpClient(base);
    await second.listTools();
    expect(
      (
        (await (await fetch(`${base}/health`, { headers: auth(base) })).json()) as {
          sessions: { mcp: number };
        }
      ).sessions.mcp,
    ).toBe(2);
  });

  it("refuses a foreign Host header (DNS rebinding) and a foreign Origin with 403", async () => {
    const { base, daemon } = await startDaemon();
    const evil = await rawRequest(`${base}/mcp`, {
      method: "POST",
      headers: { ...mcpHeaders, host: "evil.example.com" },
      body: initialize,
    });
    expect(evil.status).toBe(403);
    expect(JSON.parse(evil.body)).toMatchObject({ error: { message: expect.stringMatching(/Host/) } });
    const origin = await rawRequest(`${base}/mcp`, {
      method: "POST",
      headers: { ...mcpHeaders, host: `localhost:${daemon.port}`, origin: "https://evil.example.com" },
      body: initialize,
    });
    expect(origin.status).toBe(403);
    const local = await rawRequest(`${base}/mcp`, {
      method: "POST",
      headers: { ...mcpHeaders, host: `localhost:${daemon.port}`, ...auth(base) },
      body: initialize,
    });
    expect(local.status).toBe(200);
    // A web page cannot open the WebSocket either (browsers always send Origin).
    const ws = new WebSocket(daemon.url, { origin: "https://evil.example.com" });
    const refused = await new Promise<string>((resolve) => {
      ws.on("unexpected-response", (_request, response) => resolve(String(response.statusCode)));
      ws.on("open", () => resolve("open"));
      ws.on("error", (error) => resolve(error.message));
    });
    ws.terminate();
    expect(refused).toMatch(/403/);
  });

  it("requires the bearer token when EXAI_WS_TOKEN is set: 403 'token required', never an OAuth challenge", async () => {
    const { base } = await startDaemon({ EXAI_WS_TOKEN: "http-token-123" });
    const missing = await rawRequest(`${base}/mcp`, {
      method: "POST",
      headers: mcpHeaders,
      body: initialize,
    });
    expect(missing.status).toBe(403);
    expect(missing.headers["www-authenticate"]).toBeUndefined();
    expect(JSON.parse(missing.body)).toMatchObject({
      jsonrpc: "2.0",
      error: {
        message: expect.stringContaining("token required: send the header 'Authorization: Bearer <token>'"),
      },
    });
    const wrong = await rawRequest(`${base}/mcp`, {
      method: "POST",
      headers: { ...mcpHeaders, authorization: "Bearer nope" },
      body: initialize,
    });
    expect(wrong.status).toBe(403);
    const client = await mcpClient(base, { Authorization: "Bearer http-token-123" });
    expect((await client.listTools()).tools.length).toBeGreaterThan(0);
  });

  it("answers a request with an unknown session id 404 and one without a session 400", async () => {
    const { base } = await startDaemon();
    const list = JSON.stringify({ jsonrpc: "2.0", id: 2, method: "tools/list", params: {} });
    const headers = { ...mcpHeaders, ...auth(base) };
    const unknown = await rawRequest(`${base}/mcp`, {
      method: "POST",
      headers: { ...headers, "mcp-session-id": "no-such-session" },
      body: list,
    });
    expect(unknown.status).toBe(404);
    const none = await rawRequest(`${base}/mcp`, { method: "POST", headers, body: list });
    expect(none.status).toBe(400);
    const garbage = await rawRequest(`${base}/mcp`, { method: "POST", headers, body: "{oops" });
    expect(garbage.status).toBe(400);
  });
});

describe("daemon process: secrets and graceful shutdown", () => {
  it("never logs the token, and on SIGTERM finishes the call in flight, then exits 0", async () => {
    const token = "tok-SECRET-9f8e7d6c5b4a";
    const fake = await startFakeProvider();
    const data = tempDir("exai-http-proc-");
    const port = await freePort();
    cleanups.push(async () => {
      await fake.close();
      data.cleanup();
    });
    const env = fastEnv({
      EXAI_DATA_DIR: data.path,
      EXAI_WS_HOST: "127.0.0.1",
      EXAI_WS_PORT: String(port),
      EXAI_WS_TOKEN: token,
      EXAI_LOG_LEVEL: "debug",
      ...providerEnv(fake),
    });
    const child = spawn(process.execPath, [CLI, "daemon"], {
      cwd: REPO_ROOT,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
      stdio: ["ignore", "ignore", "pipe"],
    });
    cleanups.push(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    });
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
    const base = `http://127.0.0.1:${port}`;
    const started = performance.now();
    for (;;) {
      const up = await fetch(`${base}/health`, { signal: AbortSignal.timeout(300) }).then(
        (response) => response.ok,
        () => false,
      );
      if (up) break;
      if (performance.now() - started > 8000) throw new Error(`the daemon did not start: ${stderr}`);
      await new Promise((resolve) => setTimeout(resolve, 25));
    }

    const open = async (hello: Record<string, unknown>) => {
      const ws = new WebSocket(`ws://127.0.0.1:${port}/`);
      cleanups.push(() => ws.terminate());
      const frames: Array<Record<string, unknown>> = [];
      const closed = new Promise<number>((resolve) => ws.on("close", (code) => resolve(code)));
      ws.on("message", (raw) => frames.push(JSON.parse(String(raw)) as Record<string, unknown>));
      ws.on("error", () => undefined);
      await new Promise((resolve) => ws.once("open", resolve));
      ws.send(JSON.stringify({ op: "hello", ...hello }));
      return { ws, frames, closed };
    };
    const wrong = await open({ token: `${token}-wrong` });
    expect(await wrong.closed).toBe(4003);
    const good = await open({ token });
    await rawRequest(`${base}/mcp`, {
      method: "POST",
      headers: { ...mcpHeaders, authorization: `Bearer ${token}x` },
      body: initialize,
    });
    while (!good.frames.some((frame) => frame.op === "hello_ack"))
      await new Promise((r) => setTimeout(r, 10));

    fake.setDefaultDelay(800);
    good.ws.send(
      JSON.stringify({ op: "call_tool", request_id: "in-flight", name: "chat", arguments: { prompt: "p" } }),
    );
    await fake.waitForRequests(1);
    child.kill("SIGTERM");
    // New connections are refused while draining; the call in flight still gets its result.
    const refusedWhileDraining = await (async () => {
      for (let tries = 0; tries < 50; tries++) {
        const probe = new WebSocket(`ws://127.0.0.1:${port}/`);
        cleanups.push(() => probe.terminate());
        const opened = await new Promise<boolean>((resolve) => {
          probe.once("open", () => resolve(true));
          probe.once("error", () => resolve(false));
        });
        probe.terminate();
        const answered = good.frames.some((frame) => frame.op === "call_tool_res");
        if (!opened) return !answered;
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      return false;
    })();
    expect(refusedWhileDraining).toBe(true);
    const code = await exited;
    expect(code).toBe(0);
    const result = good.frames.find((frame) => frame.op === "call_tool_res");
    expect(result).toMatchObject({ request_id: "in-flight", outputs: expect.any(Object) });

    const logFile = join(data.path, "logs", "exai.log");
    expect(existsSync(logFile)).toBe(true);
    const fileLog = readFileSync(logFile, "utf8");
    expect(fileLog).toContain("exai daemon listening");
    expect(fileLog).toContain("unauthorized"); // the refused hello is logged — without the token
    expect(stderr).toMatch(/listening on \S+daemon\.sock and ws:\/\//);
    expect(stderr).not.toContain(token);
    expect(fileLog).not.toContain(token);
  });
});
