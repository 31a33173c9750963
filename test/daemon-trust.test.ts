/**
 * A daemon only its owner can use (SPEC §7), with real sockets, processes and a second OS user
 * (uid 65534 when the tests run as root): the Unix socket in the 0700 EXAI_DATA_DIR refuses other
 * uids, the TCP endpoints need the token, /health without it is liveness only, sessions cannot be
 * hijacked with a leaked id, /mcp sessions are bound to the credentials that created them.
 */
import { spawn } from "node:child_process";
import { chmodSync, lchownSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import http from "node:http";
import { createServer as createNetServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { afterEach, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { CLOSE_CODES } from "../src/mcp/frames.js";
import { httpClientSnippet } from "../src/daemon/client-snippet.js";
import { createRequestRegistry } from "../src/daemon/requests.js";
import { createDaemon, type Daemon } from "../src/daemon/server.js";
import { loadOrCreateToken } from "../src/mcp/trust.js";
import { createLogger } from "../src/base/logging.js";
import { createRuntime } from "../src/runtime/runtime.js";
import { startFakeProvider } from "../src/testing/fake-provider.js";
import {
  runCleanups,
  startInProcessDaemon,
  startShim,
  type Cleanup,
  type InProcessDaemon,
} from "./support/daemon.js";
import {
  CLI,
  fastEnv,
  makeConfig,
  providerEnv,
  REPO_ROOT,
  structured,
  tempDir,
  initializeRequest,
} from "./support/harness.js";

const cleanups: Cleanup[] = [];
afterEach(() => runCleanups(cleanups));

const NOBODY = 65534;
const isRoot = process.getuid?.() === 0;

type TestDaemon = InProcessDaemon;

const startDaemon = (env: Record<string, string> = {}): Promise<TestDaemon> =>
  startInProcessDaemon(cleanups, { env, prefix: "exai-trust-" });

type Frame = Record<string, unknown>;

/** A WebSocket client recording frames and its close code. */
async function open(url: string, hello: Frame | false = {}) {
  const ws = new WebSocket(url);
  cleanups.push(() => ws.terminate());
  const frames: Frame[] = [];
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    ws.on("close", (code, reason) => resolve({ code, reason: reason.toString() })),
  );
  ws.on("message", (raw) => frames.push(JSON.parse(String(raw)) as Frame));
  ws.on("error", () => undefined);
  await new Promise<void>((resolve, reject) => {
    ws.once("open", () => resolve());
    ws.once("error", reject);
  });
  const waitFor = async (predicate: (frame: Frame) => boolean, timeoutMs = 3000): Promise<Frame> => {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const found = frames.find(predicate);
      if (found) return found;
      if (performance.now() > deadline)
        throw new Error(`no matching frame; got ${JSON.stringify(frames.map((f) => f.op))}`);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  };
  if (hello !== false) {
    ws.send(JSON.stringify({ op: "hello", client: { name: "trust-test", version: "1" }, ...hello }));
    await waitFor((frame) => frame.op === "hello_ack" || frame.op === "error");
  }
  return { ws, frames, closed, waitFor, send: (frame: Frame) => ws.send(JSON.stringify(frame)) };
}

const viaSocket = (daemon: Daemon) => `ws+unix://${daemon.socketPath}:/`;
const chat = (requestId: string, prompt: string) => ({
  op: "call_tool",
  request_id: requestId,
  name: "chat",
  arguments: { prompt },
});

/** Runs `script` (ESM, built-in modules only) with node as uid/gid 65534, from a 0755 directory. */
async function runAsNobody(script: string, args: string[]): Promise<Record<string, unknown>> {
  const dir = mkdtempSync(join(tmpdir(), "exai-nobody-"));
  chmodSync(dir, 0o755);
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, "probe.mjs");
  writeFileSync(file, script, { mode: 0o644 });
  const child = spawn(process.execPath, [file, ...args], {
    uid: NOBODY,
    gid: NOBODY,
    cwd: dir,
    env: { PATH: process.env.PATH },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const code = await new Promise<number | null>((resolve) => child.on("exit", resolve));
  if (code !== 0) throw new Error(`probe exited ${code}: ${stderr}`);
  return JSON.parse(stdout) as Record<string, unknown>;
}

/** What another uid can do with the daemon: its socket, and TCP without the token. */
const PROBE = `
import { connect } from "node:net";
import http from "node:http";
const [socketPath, port] = process.argv.slice(2);
const result = {};
result.socket = await new Promise((resolve) => {
  const socket = connect(socketPath);
  socket.once("connect", () => { socket.destroy(); resolve("connected"); });
  socket.once("error", (error) => resolve(error.code));
});
const request = (method, path, body, headers = {}) => new Promise((resolve) => {
  const req = http.request({ host: "127.0.0.1", port: Number(port), method, path,
    headers: { "content-type": "application/json", accept: "application/json, text/event-stream", ...headers } },
    (res) => { let text = ""; res.on("data", (c) => (text += c)); res.on("end", () => resolve({ status: res.statusCode, body: text, auth: res.headers["www-authenticate"] ?? null })); });
  req.on("error", (error) => resolve({ error: error.code }));
  req.end(body);
});
result.health = await request("GET", "/health");
result.metrics = await request("GET", "/metrics");
result.mcp = await request("POST", "/mcp", JSON.stringify({ jsonrpc: "2.0", id: 1, method: "initialize",
  params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "intruder", version: "1" } } }));
process.stdout.write(JSON.stringify(result));
`;

describe("another OS user", () => {
  it.skipIf(!isRoot)(
    "is refused on the socket (EACCES) and on TCP without the token; /health tells it liveness only",
    async () => {
      const { daemon, dataDir } = await startDaemon();
      expect(statSync(dataDir).mode & 0o777).toBe(0o700);
      const owner = await open(viaSocket(daemon)); // the owner connects, so there is a session to leak
      expect(owner.frames[0]).toMatchObject({ op: "hello_ack" });
      const probe = await runAsNobody(PROBE, [daemon.socketPath, String(daemon.port)]);
      expect(probe.socket).toBe("EACCES");
      const health = probe.health as { status: number; body: string };
      expect(health.status).toBe(200);
      expect(JSON.parse(health.body)).toEqual({ status: "ok", version: expect.any(String) });
      expect(health.body).not.toContain(String(owner.frames[0]?.session_id));
      for (const refused of [probe.metrics, probe.mcp] as Array<{
        status: number;
        body: string;
        auth: null;
      }>) {
        expect(refused.status).toBe(403);
        expect(refused.auth).toBeNull(); // no WWW-Authenticate: clients must not start an OAuth flow
        expect(refused.body).toContain("token required");
      }
      // The WebSocket on TCP without the token: closed before any session exists.
      const intruder = await open(daemon.url, false);
      intruder.send({ op: "hello", session_id: owner.frames[0]?.session_id as string });
      expect((await intruder.closed).code).toBe(CLOSE_CODES.TOKEN_MISSING);
      expect(intruder.frames).toEqual([]);
    },
  );
});

describe("the TCP token", () => {
  it("is generated at first start into EXAI_DATA_DIR/daemon.token (0600) and reused", () => {
    const data = tempDir("exai-token-");
    cleanups.push(() => data.cleanup());
    const first = loadOrCreateToken(data.path);
    expect(first).toMatch(/^[\w-]{43}$/);
    expect(statSync(join(data.path, "daemon.token")).mode & 0o777).toBe(0o600);
    expect(loadOrCreateToken(data.path)).toBe(first);
  });

  it("is what the MCP SDK client needs: without it the client shows 'token required'; with it, it works", async () => {
    const { base, daemon } = await startDaemon();
    const bare = new Client({ name: "no-token", version: "1" });
    const failure = await bare.connect(new StreamableHTTPClientTransport(new URL(`${base}/mcp`))).then(
      () => "connected",
      (error: unknown) => String((error as Error).message),
    );
    // What the SDK (and so the user) sees: the JSON-RPC error body with its message, no OAuth attempt.
    expect(failure).toContain("token required: send the header 'Authorization: Bearer <token>'");
    expect(failure).toContain("exai config --client claude --transport http");
    const client = new Client({ name: "with-token", version: "1" });
    await client.connect(
      new StreamableHTTPClientTransport(new URL(`${base}/mcp`), {
        requestInit: { headers: { Authorization: `Bearer ${daemon.token}` } },
      }),
    );
    cleanups.push(() => client.close());
    expect((await client.listTools()).tools.length).toBeGreaterThan(0);
  });

  it("exai config --client claude --transport http prints the URL and the daemon's token header", async () => {
    const data = tempDir("exai-token-cli-");
    cleanups.push(() => data.cleanup());
    const token = loadOrCreateToken(data.path);
    const output = await new Promise<string>((resolve, reject) => {
      const child = spawn(process.execPath, [CLI, "config", "--client", "claude", "--transport", "http"], {
        cwd: REPO_ROOT,
        env: {
          PATH: process.env.PATH,
          HOME: process.env.HOME,
          EXAI_ENV_FILE: "off",
          EXAI_DATA_DIR: data.path,
          EXAI_WS_PORT: "8799",
        },
        stdio: ["ignore", "pipe", "pipe"],
      });
      let stdout = "";
      child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
      child.on("error", reject);
      child.on("exit", () => resolve(stdout));
    });
    expect(output).toContain(
      `claude mcp add --transport http exai http://127.0.0.1:8799/mcp --header "Authorization: Bearer ${token}"`,
    );
  });

  it("is redacted from results like any configured secret", async () => {
    const { daemon } = await startDaemon();
    const token = daemon.token as string;
    const socket = await open(viaSocket(daemon));
    socket.send(chat("r-echo", `repeat after me: ${token}`));
    const result = JSON.stringify(await socket.waitFor((frame) => frame.op === "call_tool_res"));
    expect(result).toContain("[redacted]");
    expect(result).not.toContain(token);
  });

  it("is printed in each client's own header syntax", () => {
    const config = makeConfig(fastEnv({ EXAI_WS_TOKEN: "tok-1234567890abcdef" }));
    const options = { url: "http://127.0.0.1:8765/mcp", token: "tok-1234567890abcdef" };
    expect(httpClientSnippet("codex", config, options)).toContain(
      'url = "http://127.0.0.1:8765/mcp"\nhttp_headers = { "Authorization" = "Bearer tok-1234567890abcdef" }',
    );
    for (const client of ["cursor", "vscode"]) {
      const json = JSON.parse(
        httpClientSnippet(client, config, options).split("\n").slice(1).join("\n"),
      ) as Record<string, Record<string, { url: string; headers: Record<string, string> }>>;
      const entry = (json.mcpServers ?? json.servers)?.exai;
      expect(entry).toMatchObject({
        url: options.url,
        headers: { Authorization: "Bearer tok-1234567890abcdef" },
      });
    }
  });

  it("EXAI_WS_TOKEN=off opens TCP without a token (explicit opt-out)", async () => {
    const { daemon, base } = await startDaemon({ EXAI_WS_TOKEN: "off" });
    expect(daemon.token).toBeUndefined();
    const socket = await open(daemon.url);
    expect(socket.frames[0]).toMatchObject({ op: "hello_ack" });
    expect((await fetch(`${base}/metrics`)).status).toBe(200);
  });
});

describe("the daemon's socket", () => {
  const configFor = (dataDir: string) => makeConfig(fastEnv({ EXAI_DATA_DIR: dataDir }));
  const silentRuntime = (dataDir: string) => {
    const runtime = createRuntime(configFor(dataDir), {
      mode: "daemon",
      logger: createLogger({ level: "silent" }),
    });
    cleanups.push(() => runtime.close());
    return runtime;
  };

  it("replaces a stale socket nobody answers on, but never starts beside a live daemon or over a foreign file", async () => {
    const data = tempDir("exai-stale-");
    cleanups.push(() => data.cleanup());
    const socketPath = join(data.path, "daemon.sock");
    // A daemon that died: its socket file is left behind.
    const holder = spawn(process.execPath, [
      "-e",
      `require("node:net").createServer().listen(${JSON.stringify(socketPath)}, () => console.log("up"))`,
    ]);
    await new Promise<void>((resolve) => holder.stdout.once("data", () => resolve()));
    holder.kill("SIGKILL");
    await new Promise((resolve) => holder.once("exit", resolve));
    expect(statSync(socketPath).isSocket()).toBe(true);
    const daemon = await createDaemon(configFor(data.path), { port: 0, runtime: silentRuntime(data.path) });
    cleanups.push(() => daemon.close({ drainMs: 0 }));
    // A second daemon on the same data directory: refused, the first one keeps its socket.
    const second = await createDaemon(configFor(data.path), {
      port: 0,
      runtime: silentRuntime(data.path),
    }).then(
      () => "started",
      (error: unknown) => String((error as Error).message),
    );
    expect(second).toContain("another exai daemon already serves");
    const still = await open(viaSocket(daemon));
    expect(still.frames[0]).toMatchObject({ op: "hello_ack" });

    const other = tempDir("exai-foreign-file-");
    cleanups.push(() => other.cleanup());
    writeFileSync(join(other.path, "daemon.sock"), "not a socket");
    const refused = await createDaemon(configFor(other.path), {
      port: 0,
      runtime: silentRuntime(other.path),
    }).then(
      () => "started",
      (error: unknown) => error as { code?: string; message: string },
    );
    expect(refused).toMatchObject({
      code: "CONFIG_INVALID",
      message: expect.stringContaining("not a socket of yours"),
    });
    expect(readFileSync(join(other.path, "daemon.sock"), "utf8")).toBe("not a socket");
  });

  it.skipIf(!isRoot)("refuses an EXAI_DATA_DIR owned by another uid (CONFIG_INVALID naming it)", async () => {
    const data = tempDir("exai-foreign-dir-");
    cleanups.push(() => data.cleanup());
    lchownSync(data.path, NOBODY, NOBODY);
    const refused = await createDaemon(configFor(data.path), { port: 0 }).then(
      () => "started",
      (error: unknown) => error as { code?: string; message: string },
    );
    expect(refused).toMatchObject({
      code: "CONFIG_INVALID",
      message: expect.stringMatching(/EXAI_DATA_DIR .* is owned by uid 65534/),
    });
  });
});

describe("sessions cannot be hijacked", () => {
  it("a hello with a leaked session_id gets a fresh session: it cannot cancel, attach to or read the owner's call", async () => {
    const { daemon, fake } = await startDaemon();
    fake.setDefaultDelay(600);
    const owner = await open(viaSocket(daemon));
    const leaked = owner.frames[0]?.session_id as string;
    owner.send(chat("r-victim", "my secret prompt"));
    await owner.waitFor((frame) => frame.op === "call_tool_ack");

    for (const hello of [{ session_id: leaked }, { session_id: leaked, resume_secret: "guessed-secret" }]) {
      const thief = await open(viaSocket(daemon), hello);
      expect(thief.frames[0]).toMatchObject({ op: "hello_ack" });
      expect(thief.frames[0]?.session_id).not.toBe(leaked);
      thief.send({ op: "cancel", request_id: "r-victim" });
      thief.send(chat("r-victim", "my secret prompt"));
      expect(
        await thief.waitFor((frame) => frame.op === "call_tool_res" && frame.request_id === "r-victim"),
      ).toMatchObject({ error: { code: "DUPLICATE" } });
    }
    const result = await owner.waitFor((frame) => frame.op === "call_tool_res");
    expect(result.outputs).toBeDefined();
    expect(fake.chatRequests()[0]?.abortedAt).toBeUndefined();
    // After the call: the cached result is not readable with the leaked id either.
    const late = await open(viaSocket(daemon), { session_id: leaked });
    late.send(chat("r-victim", "my secret prompt"));
    expect(
      await late.waitFor((frame) => frame.op === "call_tool_res" && frame.request_id === "r-victim"),
    ).toMatchObject({ error: { code: "DUPLICATE" } });
    // The owner, with its secret, resumes its own session and reads its cached result.
    const resumed = await open(viaSocket(daemon), {
      session_id: leaked,
      resume_secret: owner.frames[0]?.resume_secret as string,
    });
    expect(resumed.frames[0]).toMatchObject({ session_id: leaked });
    resumed.send(chat("r-victim", "my secret prompt"));
    expect(
      await resumed.waitFor((frame) => frame.op === "call_tool_res" && frame.request_id === "r-victim"),
    ).toMatchObject({ outputs: result.outputs });
    expect(fake.chatRequests()).toHaveLength(1);
  });

  it("session ids appear neither in /health, /metrics nor the health op", async () => {
    const { daemon, base, fake } = await startDaemon();
    fake.setDefaultDelay(400);
    const owner = await open(viaSocket(daemon));
    const sessionId = owner.frames[0]?.session_id as string;
    owner.send(chat("r-busy", "keep a session slot busy"));
    await fake.waitForRequests(1);
    const auth = { authorization: `Bearer ${daemon.token}` };
    const bare = await (await fetch(`${base}/health`)).text();
    expect(JSON.parse(bare)).toEqual({ status: "ok", version: expect.any(String) });
    const detailed = await (await fetch(`${base}/health`, { headers: auth })).text();
    expect(JSON.parse(detailed)).toMatchObject({ inflight: { session: { busy_sessions: 1, inflight: 1 } } });
    const metrics = await (await fetch(`${base}/metrics`, { headers: auth })).text();
    owner.send({ op: "health" });
    const op = JSON.stringify(await owner.waitFor((frame) => frame.op === "health_res"));
    for (const text of [bare, detailed, metrics, op]) expect(text).not.toContain(sessionId);
    expect(metrics).toMatch(/exai_admission_inflight\{cap="session",name="all"\} 1/);
  });

  it("an /mcp session opened over the socket cannot be used or ended over TCP with its id", async () => {
    const { daemon, base } = await startDaemon();
    const viaUnix = (method: string, headers: Record<string, string>, body?: string) =>
      new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }>((resolve, reject) => {
        const request = http.request(
          { socketPath: daemon.socketPath, path: "/mcp", method, headers },
          (response) => {
            let text = "";
            response.on("data", (chunk: Buffer) => (text += chunk.toString()));
            response.on("end", () =>
              resolve({ status: response.statusCode ?? 0, headers: response.headers, body: text }),
            );
          },
        );
        request.on("error", reject);
        request.end(body);
      });
    const headers = { "content-type": "application/json", accept: "application/json, text/event-stream" };
    const initialized = await viaUnix("POST", headers, JSON.stringify(initializeRequest("owner")));
    expect(initialized.status).toBe(200);
    const sessionId = String(initialized.headers["mcp-session-id"]);
    const tcpHeaders = { ...headers, authorization: `Bearer ${daemon.token}`, "mcp-session-id": sessionId };
    const list = JSON.stringify({ jsonrpc: "2.0", id: 2, method: "tools/list", params: {} });
    expect((await fetch(`${base}/mcp`, { method: "POST", headers: tcpHeaders, body: list })).status).toBe(
      404,
    );
    expect((await fetch(`${base}/mcp`, { method: "DELETE", headers: tcpHeaders })).status).toBe(404);
    // Still the owner's: it answers over the socket.
    const own = await viaUnix(
      "POST",
      { ...headers, "mcp-session-id": sessionId, "mcp-protocol-version": "2025-06-18" },
      list,
    );
    expect(own.status).toBe(200);
    expect(own.body).toContain('"tools"');
  });
});

describe("the shim sends nothing to a daemon it cannot verify", () => {
  /** A TCP server on a free port that records every byte it receives. */
  async function squatter(): Promise<{ port: number; bytes: () => number }> {
    let received = 0;
    const sockets = new Set<Socket>();
    const server = createNetServer((socket) => {
      sockets.add(socket);
      socket.on("data", (chunk: Buffer) => (received += chunk.length));
      socket.on("error", () => undefined);
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    cleanups.push(
      () =>
        new Promise<void>((resolve) => {
          for (const socket of sockets) socket.destroy();
          server.close(() => resolve());
        }),
    );
    const address = server.address();
    return { port: typeof address === "object" && address ? address.port : 0, bytes: () => received };
  }

  it.skipIf(!isRoot)(
    "a planted socket of another uid, or a data dir open to others: CONFIG_INVALID 'could not be verified', no bytes anywhere",
    async () => {
      const squat = await squatter();
      for (const plant of ["foreign-socket", "open-dir"] as const) {
        const data = tempDir("exai-planted-");
        cleanups.push(() => data.cleanup());
        let connections = 0;
        const planted = createNetServer((socket) => {
          connections++;
          socket.destroy();
        });
        await new Promise<void>((resolve) => planted.listen(join(data.path, "daemon.sock"), resolve));
        cleanups.push(() => new Promise<void>((resolve) => planted.close(() => resolve())));
        if (plant === "foreign-socket") lchownSync(join(data.path, "daemon.sock"), NOBODY, NOBODY);
        else chmodSync(data.path, 0o755);
        const shim = await startShim(
          fastEnv({
            EXAI_DATA_DIR: data.path,
            EXAI_WS_HOST: "127.0.0.1",
            EXAI_WS_PORT: String(squat.port),
            GLM_API_KEY: "the-users-secret-key",
            GLM_API_URL: "http://127.0.0.1:9/",
          }),
          cleanups,
        );
        const result = await shim.client.callTool({
          name: "chat",
          arguments: { prompt: "a secret prompt", model: "glm-4.5-flash" },
        });
        expect(result.isError).toBe(true);
        const payload = structured(result);
        expect(payload.code).toBe("CONFIG_INVALID");
        expect(String(payload.message)).toMatch(/^the daemon could not be verified: /);
        expect(String(payload.message)).toContain("EXAI_DATA_DIR");
        expect(String(payload.message)).toContain(plant === "foreign-socket" ? "uid 65534" : "mode 0755");
        expect(connections).toBe(0);
      }
      expect(squat.bytes()).toBe(0);
    },
  );

  it("with a squatter on the TCP port, the shim's own daemon starts, serves the socket, and the squatter gets nothing", async () => {
    const squat = await squatter();
    const fake = await startFakeProvider();
    const data = tempDir("exai-squat-");
    cleanups.push(async () => {
      // The daemon the shim started: find it through its socket and stop it.
      const pid = await new Promise<number | undefined>((resolve) => {
        const request = http.get(
          { socketPath: join(data.path, "daemon.sock"), path: "/health" },
          (response) => {
            let text = "";
            response.on("data", (chunk: Buffer) => (text += chunk.toString()));
            response.on("end", () => resolve((JSON.parse(text) as { pid?: number }).pid));
          },
        );
        request.on("error", () => resolve(undefined));
      });
      if (pid !== undefined) process.kill(pid, "SIGKILL");
      await fake.close();
      data.cleanup();
    });
    const shim = await startShim(
      fastEnv({
        ...providerEnv(fake),
        EXAI_DATA_DIR: data.path,
        EXAI_WS_HOST: "127.0.0.1",
        EXAI_WS_PORT: String(squat.port),
      }),
      cleanups,
    );
    const result = await shim.client.callTool({
      name: "chat",
      arguments: { prompt: "through the socket", model: "glm-4.5-flash" },
    });
    expect(structured(result)).toMatchObject({ status: "success" });
    expect(fake.chatRequests()).toHaveLength(1);
    expect(squat.bytes()).toBe(0);
    const log = readFileSync(join(data.path, "logs", "exai.log"), "utf8");
    expect(log).toContain(`TCP port ${squat.port} on 127.0.0.1 is taken`);
  });
});

describe("bounded daemon memory", () => {
  it("caps cached results by bytes, oldest evicted", async () => {
    const registry = createRequestRegistry({
      resultTtlMs: 60_000,
      reconnectGraceMs: 1000,
      maxCachedBytes: 2000,
    });
    cleanups.push(() => registry.close(new Error("done") as never));
    const connection = { id: "c", sessionId: "s", send: () => undefined };
    for (let index = 0; index < 10; index++) {
      registry.submit(
        { op: "call_tool", request_id: `r-${index}`, name: "chat", arguments: { index } },
        connection,
        () => ({
          traceId: "t",
          timeoutS: 1,
          result: Promise.resolve({
            outputs: { content: [{ type: "text", text: "x".repeat(600) }] },
            summary: {},
          }),
        }),
      );
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(registry.cachedBytes()).toBeLessThanOrEqual(2000);
    expect(registry.cached()).toBe(2);
    // The newest are kept: a re-sent old request_id is no longer answered from the cache.
    const answers: Frame[] = [];
    const listener = { id: "d", sessionId: "s", send: (frame: Frame) => answers.push(frame) };
    const outcome = registry.submit(
      { op: "call_tool", request_id: "r-9", name: "chat", arguments: { index: 9 } },
      listener as never,
      () => {
        throw new Error("must come from the cache");
      },
    );
    expect(outcome.kind).toBe("cached");
  });

  it("caps /mcp sessions: the least recently used is closed and counted", async () => {
    const { base, daemon } = await startDaemon({ EXAI_MCP_MAX_SESSIONS: "2" });
    const headers = { Authorization: `Bearer ${daemon.token}` };
    const clients: Client[] = [];
    for (let index = 0; index < 3; index++) {
      const client = new Client({ name: `c${index}`, version: "1" });
      await client.connect(
        new StreamableHTTPClientTransport(new URL(`${base}/mcp`), { requestInit: { headers } }),
      );
      cleanups.push(() => client.close());
      clients.push(client);
    }
    const first = await clients[0]?.listTools().then(
      () => "ok",
      (error: unknown) => String(error),
    );
    expect(first).toMatch(/404|Session not found/);
    expect((await clients[2]?.listTools())?.tools.length).toBeGreaterThan(0);
    const metrics = await (await fetch(`${base}/metrics`, { headers })).text();
    expect(metrics).toMatch(/exai_mcp_sessions_evicted_total 1/);
    const health = (await (await fetch(`${base}/health`, { headers })).json()) as {
      sessions: { mcp: number };
    };
    expect(health.sessions.mcp).toBe(2);
  });

  it("an aborted POST /mcp aborts its provider request", async () => {
    const { base, daemon, fake } = await startDaemon();
    fake.setDefaultDelay(2500);
    const headers = {
      "content-type": "application/json",
      accept: "application/json, text/event-stream",
      authorization: `Bearer ${daemon.token}`,
    };
    const init = await fetch(`${base}/mcp`, {
      method: "POST",
      headers,
      body: JSON.stringify(initializeRequest("aborter")),
    });
    const sessionId = init.headers.get("mcp-session-id") ?? "";
    await init.text();
    const session = { ...headers, "mcp-session-id": sessionId, "mcp-protocol-version": "2025-06-18" };
    await fetch(`${base}/mcp`, {
      method: "POST",
      headers: session,
      body: JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" }),
    });
    const controller = new AbortController();
    const call = fetch(`${base}/mcp`, {
      method: "POST",
      headers: session,
      body: JSON.stringify({
        jsonrpc: "2.0",
        id: 2,
        method: "tools/call",
        params: { name: "chat", arguments: { prompt: "abandon me", model: "glm-4.5-flash" } },
      }),
      signal: controller.signal,
    }).then((response) => response.text());
    call.catch(() => undefined);
    await fake.waitForRequests(1);
    const abortedAt = performance.now();
    controller.abort();
    const deadline = performance.now() + 1500;
    while (fake.chatRequests()[0]?.abortedAt === undefined && performance.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 10));
    const providerAbort = fake.chatRequests()[0]?.abortedAt;
    expect(providerAbort).toBeDefined();
    expect((providerAbort ?? Infinity) - abortedAt).toBeLessThan(1000);
    expect(fake.chatRequests()[0]?.completedAt).toBeUndefined();
  });
});
