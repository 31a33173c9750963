/**
 * `exai daemon` (SPEC §7): one process that many MCP clients share. One port serves
 *   - WebSocket `ws://host:port/` — the shim protocol of ./protocol.ts (hello, list_tools,
 *     call_tool → ack / progress / result, cancel, health);
 *   - `/mcp` — MCP Streamable HTTP (./http-mcp.ts);
 *   - `/health` (JSON) and `/metrics` (Prometheus text, ./metrics.ts).
 *
 * Calls run on the shared runtime's executor with the daemon ceiling (EXAI_WS_CALL_TIMEOUT), the
 * caller's `deadline_ms`, the WebSocket session as admission session, the caller's `roots` as file
 * sandbox (the shim sends its client's roots, else its own cwd; the daemon's EXAI_ALLOWED_ROOTS
 * still wins), and no OVER_CAPACITY retries here (the shim retries, so a refusal comes back at once
 * with retry_after). request_id idempotency, ownership and call_key duplicates live in ./requests.ts.
 *
 * Every HTTP path (/mcp, /health, /metrics) checks the Host header and Origin (loopback or the
 * configured host, with the port); before its hello a WebSocket peer may send at most 64 KiB.
 *
 * Shutdown (SIGTERM): stop accepting, let in-flight calls finish within their deadlines, deliver
 * their results, close every socket, close the runtime.
 */
import { randomUUID } from "node:crypto";
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import { WebSocketServer, type RawData, type WebSocket } from "ws";
import type { Config } from "../config/load.js";
import { ExaiError, toExaiError } from "../errors.js";
import type { Logger } from "../logging.js";
import type { CallOutcome, CallRequest, Executor } from "../runtime/executor.js";
import { createRuntime, type Runtime } from "../runtime/runtime.js";
import { listTools, toCallToolResult } from "../server/mcp.js";
import { VERSION } from "../version.js";
import { createMcpHttpEndpoint, hostOrOriginProblem, isAllowedOrigin } from "./http-mcp.js";
import { createDaemonMetrics } from "./metrics.js";
import {
  CLOSE_CODES,
  HELLO_TIMEOUT_MS,
  helloFrameSchema,
  MAX_FRAME_BYTES,
  MAX_PRE_HELLO_FRAME_BYTES,
  parseClientFrame,
  PING_INTERVAL_MS,
  tokensEqual,
  type CallToolFrame,
  type ServerFrame,
} from "./protocol.js";
import { createRequestRegistry, type CallResultBody, type RequestConnection } from "./requests.js";

export interface DaemonOptions {
  /** Listen address; default EXAI_WS_HOST. */
  host?: string;
  /** Port (0 = any free port); default EXAI_WS_PORT. */
  port?: number;
  /** The first frame must be a hello within this many ms (default 15,000). */
  helloTimeoutMs?: number;
  /** WebSocket ping cadence, ms; a peer that missed the previous pong is terminated (default 45,000). */
  pingIntervalMs?: number;
  /** Largest WebSocket frame / HTTP body accepted, bytes (default 32 MiB). */
  maxPayloadBytes?: number;
  /** How long a call keeps running after its client disconnected, waiting for a re-attach, ms (default 10,000). */
  reconnectGraceMs?: number;
  /** Enables `POST /debug/drop-connections` (tests only: EXAI_DAEMON_TEST_HOOKS=1). */
  testHooks?: boolean;
  /** A runtime to serve (tests); by default one is built from the config and closed with the daemon. */
  runtime?: Runtime;
}

export interface Daemon {
  readonly host: string;
  /** The port actually bound (useful with port 0). */
  readonly port: number;
  /** ws://host:port/ */
  readonly url: string;
  readonly runtime: Runtime;
  /**
   * Graceful shutdown: refuses new connections and calls, waits up to `drainMs` (default: the
   * daemon ceiling) for calls in flight, delivers their results, closes every socket and (when it
   * built it) the runtime. Idempotent.
   */
  close(options?: { drainMs?: number }): Promise<void>;
}

interface ClientConnection extends RequestConnection {
  ws: WebSocket;
  /** Set by the hello. */
  sessionId?: string;
  client?: string;
  alive: boolean;
  helloTimer?: NodeJS.Timeout;
}

const newTraceId = () => randomUUID().replace(/-/g, "");

/**
 * Starts the daemon and resolves once it listens.
 * @throws ExaiError CONFIG_INVALID when the port is taken or the address cannot be bound.
 */
export async function createDaemon(config: Config, options: DaemonOptions = {}): Promise<Daemon> {
  const host = options.host ?? config.daemon.host;
  const ownsRuntime = options.runtime === undefined;
  const runtime = options.runtime ?? createRuntime(config, { mode: "daemon" });
  const logger: Logger = runtime.logger.child({ component: "daemon" });
  const helloTimeoutMs = options.helloTimeoutMs ?? HELLO_TIMEOUT_MS;
  const maxPayload = options.maxPayloadBytes ?? MAX_FRAME_BYTES;
  const ceilingMs = config.timeouts.daemonMs;
  const token = config.daemon.token;
  const startedAt = performance.now();
  const daemonId = randomUUID();

  const connections = new Set<ClientConnection>();
  let boundPort = 0;
  let draining = false;

  const metrics = createDaemonMetrics({
    admission: runtime.admission,
    inflight: () => runtime.executor.inflight(),
    sessions: () => ({ websocket: greetedCount(), mcp: mcp.sessions() }),
  });
  const executor: Executor = metrics.instrument(runtime.executor);
  const tools = listTools(executor.tools());
  const requests = createRequestRegistry({
    resultTtlMs: config.daemon.resultTtlMs,
    reconnectGraceMs: options.reconnectGraceMs ?? 10_000,
  });

  const allowedHosts = () => {
    const names = new Set(["localhost", "127.0.0.1", "[::1]", host.includes(":") ? `[${host}]` : host]);
    return new Set([...names].map((name) => `${name.toLowerCase()}:${boundPort}`));
  };
  // While draining, /mcp sessions that are already open get OVER_CAPACITY for new calls (like the WebSocket).
  const mcpExecutor: Executor = {
    ...executor,
    call: (request) => (draining ? Promise.resolve(shuttingDownOutcome(request)) : executor.call(request)),
  };
  const mcp = createMcpHttpEndpoint({
    runtime,
    executor: mcpExecutor,
    ceilingMs,
    ...(token !== undefined ? { token } : {}),
    allowedHosts,
    logger,
    maxBodyBytes: maxPayload,
  });

  function shuttingDown(): ExaiError {
    return new ExaiError(
      "OVER_CAPACITY",
      "the daemon is shutting down; retry in a moment (a new daemon will serve it)",
      { retryable: true, retryAfterS: 1, details: { cap: "shutdown" } },
    );
  }

  function shuttingDownOutcome(request: CallRequest): CallOutcome {
    metrics.recordRejection("OVER_CAPACITY", "shutdown");
    const traceId = request.traceId ?? newTraceId();
    return {
      ok: false,
      error: shuttingDown().toPayload(traceId),
      traceId,
      budgetMs: 0,
      summary: {
        event: "CALL SUMMARY",
        tool: request.tool,
        trace_id: traceId,
        call_key_hash: "",
        attempts: 0,
        duration_ms: 0,
        queue_ms: 0,
        budget_ms: 0,
        layer: "daemon",
        outcome: "error",
        error_code: "OVER_CAPACITY",
        coalesced: false,
        usage: { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 },
        ...(request.sessionId !== undefined ? { session: request.sessionId } : {}),
      },
    };
  }

  function greetedCount(): number {
    let count = 0;
    for (const connection of connections) if (connection.sessionId !== undefined) count++;
    return count;
  }

  const health = () => ({
    status: draining ? "draining" : "ok",
    version: VERSION,
    pid: process.pid,
    daemon_id: daemonId,
    uptime_s: Math.round((performance.now() - startedAt) / 100) / 10,
    calls_inflight: executor.inflight(),
    inflight: runtime.admission.snapshot(),
    requests: { running: requests.running(), cached: requests.cached() },
    sessions: { websocket: greetedCount(), mcp: mcp.sessions() },
    providers: runtime.registry.configuredProviders(),
    timeouts_s: {
      daemon: ceilingMs / 1000,
      shim: config.timeouts.shimMs / 1000,
      simple: config.timeouts.simpleToolMs / 1000,
      workflow: config.timeouts.workflowToolMs / 1000,
    },
  });

  // ------------------------------------------------------------------------------------------
  // Calls
  // ------------------------------------------------------------------------------------------

  const resultBody = (outcome: Awaited<ReturnType<Executor["call"]>>): CallResultBody => {
    const summary = { ...outcome.summary };
    if (!outcome.ok && outcome.error) return { error: outcome.error, summary };
    const result = toCallToolResult(outcome);
    return {
      outputs: {
        content: result.content,
        ...(result.structuredContent ? { structuredContent: result.structuredContent } : {}),
      },
      summary,
    };
  };

  /** A refusal decided here (never reached the executor): ack + result with `error`. */
  const refuse = (connection: ClientConnection, frame: CallToolFrame, error: ExaiError) => {
    const traceId = frame.trace_id ?? newTraceId();
    connection.send({ op: "call_tool_ack", request_id: frame.request_id, trace_id: traceId, timeout_s: 0 });
    connection.send({
      op: "call_tool_res",
      request_id: frame.request_id,
      error: error.toPayload(traceId),
      summary: {
        event: "CALL SUMMARY",
        tool: frame.name,
        trace_id: traceId,
        outcome: "error",
        error_code: error.code,
        duration_ms: 0,
        session: connection.sessionId,
      },
    });
    logger.info(
      { tool: frame.name, trace_id: traceId, request_id: frame.request_id, error_code: error.code },
      "call refused",
    );
  };

  const handleCall = (connection: ClientConnection, frame: CallToolFrame) => {
    if (draining) {
      metrics.recordRejection("OVER_CAPACITY", "shutdown");
      refuse(connection, frame, shuttingDown());
      return;
    }
    const submitted = requests.submit(frame, connection, (signal, progress) => {
      const traceId = frame.trace_id ?? newTraceId();
      const tool = executor.findTool(frame.name);
      const budgetMs = Math.min(
        ceilingMs,
        tool ? executor.budgetFor(tool) : ceilingMs,
        frame.deadline_ms ?? Number.POSITIVE_INFINITY,
      );
      const result = executor
        .call({
          tool: frame.name,
          arguments: frame.arguments,
          traceId,
          ...(frame.call_key !== undefined ? { callKey: frame.call_key } : {}),
          ...(connection.sessionId !== undefined ? { sessionId: connection.sessionId } : {}),
          ...(frame.deadline_ms !== undefined ? { callerBudgetMs: frame.deadline_ms } : {}),
          ...(frame.roots !== undefined && frame.roots.length > 0 ? { roots: frame.roots } : {}),
          ceiling: { layer: "daemon", ms: ceilingMs },
          signal,
          retryOverCapacity: false,
          onProgress: (event) =>
            progress({ elapsed_s: event.elapsedS, remaining_s: event.remainingS, message: event.message }),
        })
        .then(resultBody, (error: unknown): CallResultBody => {
          // executor.call never rejects; this keeps a bug from leaving the caller without an answer.
          const failure = toExaiError(error, "daemon");
          logger.error({ err: error, trace_id: traceId }, "executor.call rejected");
          return {
            error: failure.toPayload(traceId),
            summary: { tool: frame.name, trace_id: traceId, outcome: "error", error_code: failure.code },
          };
        });
      return { traceId, timeoutS: budgetMs / 1000, result };
    });
    if (submitted.kind === "duplicate") {
      metrics.recordRejection("DUPLICATE", submitted.reason);
      refuse(
        connection,
        frame,
        new ExaiError(
          "DUPLICATE",
          submitted.reason === "call_key"
            ? `a call with this call_key is already in flight as request ${submitted.originalRequestId}; wait for its result or send a different call_key`
            : `request_id ${submitted.originalRequestId} is already taken by another session or by a call with other arguments; send a fresh request_id for a new call`,
          { details: { original_request_id: submitted.originalRequestId } },
        ),
      );
    } else if (submitted.kind !== "started") {
      logger.info(
        { request_id: frame.request_id, trace_id: submitted.traceId, how: submitted.kind },
        "request re-attached",
      );
    }
  };

  // ------------------------------------------------------------------------------------------
  // WebSocket connections
  // ------------------------------------------------------------------------------------------

  const wss = new WebSocketServer({ noServer: true, maxPayload });

  const closeWith = (connection: ClientConnection, code: number, reason: string) => {
    logger.info({ connection: connection.id, code, reason }, "closing WebSocket connection");
    connection.ws.close(code, reason);
  };

  const onHello = (connection: ClientConnection, data: RawData, isBinary: boolean) => {
    clearTimeout(connection.helloTimer);
    let value: unknown;
    try {
      value = isBinary ? undefined : JSON.parse(rawText(data));
    } catch {
      // Not JSON: answered with close 4000 below.
      value = undefined;
    }
    const hello = helloFrameSchema.safeParse(value);
    if (!hello.success) {
      closeWith(connection, CLOSE_CODES.INVALID_HELLO, "invalid hello: the first frame must be {op:'hello'}");
      return;
    }
    if (token !== undefined) {
      if (hello.data.token === undefined) {
        closeWith(connection, CLOSE_CODES.TOKEN_MISSING, "token missing: send the EXAI_WS_TOKEN in hello");
        return;
      }
      if (!tokensEqual(token, hello.data.token)) {
        closeWith(
          connection,
          CLOSE_CODES.UNAUTHORIZED,
          "unauthorized: the token does not match EXAI_WS_TOKEN",
        );
        return;
      }
    }
    connection.sessionId = hello.data.session_id ?? randomUUID();
    const client = hello.data.client;
    connection.client = client ? `${client.name ?? "?"}/${client.version ?? "?"}` : undefined;
    connection.send({
      op: "hello_ack",
      ok: true,
      session_id: connection.sessionId,
      server_version: VERSION,
      daemon_id: daemonId,
    });
    logger.info(
      { connection: connection.id, session: connection.sessionId, client: connection.client },
      "WebSocket session started",
    );
  };

  const onFrame = (connection: ClientConnection, data: RawData, isBinary: boolean) => {
    if (isBinary) {
      connection.send({
        op: "error",
        code: "BAD_FRAME",
        message: "binary frames are not supported; send JSON text",
      });
      return;
    }
    const parsed = parseClientFrame(rawText(data));
    if (!parsed.ok) {
      logger.debug(
        { connection: connection.id, code: parsed.code, request_id: parsed.requestId },
        "bad frame",
      );
      connection.send({
        op: "error",
        code: parsed.code,
        message: parsed.message,
        ...(parsed.requestId !== undefined ? { request_id: parsed.requestId } : {}),
      });
      return;
    }
    const frame = parsed.frame;
    switch (frame.op) {
      case "hello":
        connection.send({
          op: "error",
          code: "BAD_FRAME",
          message: "hello was already received on this connection",
        });
        return;
      case "list_tools":
        connection.send({
          op: "list_tools_res",
          tools: tools as Array<{ name: string; inputSchema: Record<string, unknown> }>,
        });
        return;
      case "call_tool":
        handleCall(connection, frame);
        return;
      case "cancel": {
        const cancelled = requests.cancel(
          frame.request_id,
          connection.sessionId,
          new ExaiError("CANCELLED", `the client cancelled request ${frame.request_id}`),
        );
        logger.debug({ request_id: frame.request_id, session: connection.sessionId, cancelled }, "cancel");
        return;
      }
      case "health":
        connection.send({ op: "health_res", ...health() });
        return;
    }
  };

  /** Before the hello, a frame over 64 KiB closes the connection (1009) and stops reading from it. */
  const refuseBigBeforeHello = (connection: ClientConnection, socket: Duplex) => {
    if (connection.ws.readyState !== connection.ws.OPEN) return;
    closeWith(
      connection,
      CLOSE_CODES.TOO_BIG,
      `frame before hello larger than ${MAX_PRE_HELLO_FRAME_BYTES / 1024} KiB`,
    );
    socket.pause();
    setTimeout(() => connection.ws.terminate(), 500).unref();
  };

  wss.on("connection", (ws: WebSocket, request: IncomingMessage) => {
    const connection: ClientConnection = {
      id: randomUUID(),
      ws,
      alive: true,
      send(frame: ServerFrame) {
        if (ws.readyState !== ws.OPEN) return;
        ws.send(JSON.stringify(frame), (error) => {
          if (error) logger.debug({ err: error, connection: connection.id }, "frame not delivered");
        });
      },
    };
    connections.add(connection);
    connection.helloTimer = setTimeout(
      () =>
        closeWith(
          connection,
          CLOSE_CODES.HELLO_TIMEOUT,
          `hello timeout: no hello within ${helloTimeoutMs} ms`,
        ),
      helloTimeoutMs,
    );
    connection.helloTimer.unref();
    // Counts the raw bytes until the hello is handled, so an oversize first frame is refused while it
    // arrives instead of after up to MAX_FRAME_BYTES were buffered. ws parses each chunk (and emits
    // the hello) in its own data listener, which runs before this one; counted bytes therefore all
    // belong to the first frame (its header is at most 14 bytes).
    const rawSocket = request.socket;
    let preHelloBytes = 0;
    const countPreHello = (chunk: Buffer) => {
      if (connection.sessionId !== undefined) {
        rawSocket.off("data", countPreHello);
        return;
      }
      preHelloBytes += chunk.length;
      if (preHelloBytes > MAX_PRE_HELLO_FRAME_BYTES + 14) refuseBigBeforeHello(connection, rawSocket);
    };
    rawSocket.on("data", countPreHello);
    ws.on("pong", () => {
      connection.alive = true;
    });
    ws.on("error", (error) => {
      // ws closes the socket itself (e.g. 1009 for an oversize frame); the error is only reported.
      logger.warn({ connection: connection.id, err: { message: error.message } }, "WebSocket error");
    });
    ws.on("message", (data, isBinary) => {
      if (ws.readyState !== ws.OPEN) return; // closing after a refused hello: ignore what follows
      if (connection.sessionId !== undefined) onFrame(connection, data, isBinary);
      else if (rawLength(data) > MAX_PRE_HELLO_FRAME_BYTES) refuseBigBeforeHello(connection, rawSocket);
      else onHello(connection, data, isBinary);
    });
    ws.on("close", (code) => {
      clearTimeout(connection.helloTimer);
      connections.delete(connection);
      requests.detach(connection.id);
      logger.info({ connection: connection.id, session: connection.sessionId, code }, "WebSocket closed");
    });
  });

  const pingTimer = setInterval(() => {
    for (const connection of connections) {
      if (!connection.alive) {
        logger.info({ connection: connection.id }, "peer missed a ping; terminating");
        connection.ws.terminate();
        continue;
      }
      connection.alive = false;
      connection.ws.ping();
    }
  }, options.pingIntervalMs ?? PING_INTERVAL_MS);
  pingTimer.unref();

  // ------------------------------------------------------------------------------------------
  // HTTP
  // ------------------------------------------------------------------------------------------

  const sendJson = (response: ServerResponse, status: number, body: unknown) => {
    response.writeHead(status, { "content-type": "application/json" });
    response.end(JSON.stringify(body));
  };

  const onRequest = async (request: IncomingMessage, response: ServerResponse) => {
    const path = (request.url ?? "/").split("?")[0] ?? "/";
    if (path !== "/mcp") {
      // /mcp answers these itself, in JSON-RPC shape.
      const forbidden = hostOrOriginProblem(request, allowedHosts());
      if (forbidden !== undefined) {
        sendJson(response, 403, { error: forbidden });
        return;
      }
    }
    if (path === "/mcp") {
      await mcp.handle(request, response);
      return;
    }
    if (path === "/health" && request.method === "GET") {
      sendJson(response, 200, health());
      return;
    }
    if (path === "/metrics" && request.method === "GET") {
      const rendered = await metrics.render();
      response.writeHead(200, { "content-type": rendered.contentType });
      response.end(rendered.body);
      return;
    }
    if (path === "/debug/drop-connections" && request.method === "POST" && options.testHooks) {
      const dropped = connections.size;
      for (const connection of connections) connection.ws.terminate();
      logger.warn({ dropped }, "test hook: dropped every WebSocket connection");
      sendJson(response, 200, { dropped });
      return;
    }
    sendJson(response, 404, {
      error: `not found: ${request.method} ${path}; try /health, /metrics, /mcp or ws://`,
    });
  };

  const httpServer = http.createServer((request, response) => {
    onRequest(request, response).catch((error: unknown) => {
      logger.warn({ err: error }, "HTTP request failed");
      if (!response.headersSent) sendJson(response, 500, { error: "internal error" });
      else response.end();
    });
  });
  httpServer.on("clientError", (_error, socket) => socket.destroy());
  httpServer.on("upgrade", (request: IncomingMessage, socket: Duplex, head: Buffer) => {
    const path = (request.url ?? "/").split("?")[0];
    const reject = (status: string) => {
      socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    };
    if (draining) return reject("503 Service Unavailable");
    if (path !== "/" && path !== "/ws") return reject("404 Not Found");
    // Browsers send Origin on WebSocket handshakes (the shim does not): a web page must not reach the daemon.
    if (!isAllowedOrigin(request.headers.origin, allowedHosts())) return reject("403 Forbidden");
    wss.handleUpgrade(request, socket, head, (ws) => wss.emit("connection", ws, request));
  });

  try {
    await new Promise<void>((resolve, reject) => {
      httpServer.once("error", reject);
      httpServer.listen(options.port ?? config.daemon.port, host, () => {
        httpServer.off("error", reject);
        resolve();
      });
    });
  } catch (error) {
    clearInterval(pingTimer);
    requests.close(new ExaiError("CANCELLED", "the daemon did not start"));
    await mcp.close();
    if (ownsRuntime) await runtime.close();
    const code = (error as NodeJS.ErrnoException).code;
    throw new ExaiError(
      "CONFIG_INVALID",
      code === "EADDRINUSE"
        ? `port ${options.port ?? config.daemon.port} on ${host} is already in use: another exai daemon is probably running (see http://${host}:${options.port ?? config.daemon.port}/health), or set EXAI_WS_PORT / --port`
        : `the daemon could not listen on ${host}:${options.port ?? config.daemon.port}: ${(error as Error).message}; check EXAI_WS_HOST / EXAI_WS_PORT`,
      { cause: error, details: { variables: ["EXAI_WS_HOST", "EXAI_WS_PORT"] } },
    );
  }
  const address = httpServer.address();
  boundPort = typeof address === "object" && address !== null ? address.port : 0;
  const shownHost = host.includes(":") ? `[${host}]` : host;
  const url = `ws://${shownHost}:${boundPort}/`;
  logger.info(
    {
      url,
      tools: tools.length,
      providers: runtime.registry.configuredProviders(),
      auth: token !== undefined,
    },
    "exai daemon listening",
  );

  let closing: Promise<void> | undefined;
  const close = (closeOptions: { drainMs?: number } = {}) => {
    closing ??= (async () => {
      draining = true;
      mcp.stopAccepting();
      const serverClosed = new Promise<void>((resolve) => httpServer.close(() => resolve()));
      logger.info({ inflight: executor.inflight() }, "exai daemon draining");
      await executor.drain(closeOptions.drainMs ?? ceilingMs);
      // Results are sent in promise callbacks queued as the last call settles; let them run first.
      await new Promise<void>((resolve) => setImmediate(resolve));
      requests.close(new ExaiError("CANCELLED", "the daemon shut down before the call finished"));
      clearInterval(pingTimer);
      for (const connection of connections) {
        connection.ws.close(CLOSE_CODES.GOING_AWAY, "daemon shutting down");
        setTimeout(() => connection.ws.terminate(), 500).unref();
      }
      await mcp.close();
      wss.close();
      httpServer.closeAllConnections();
      await Promise.race([serverClosed, new Promise<void>((resolve) => setTimeout(resolve, 1000).unref())]);
      logger.info("exai daemon stopped");
      if (ownsRuntime) await runtime.close();
    })();
    return closing;
  };

  return { host, port: boundPort, url, runtime, close };
}

function rawLength(data: RawData): number {
  if (Array.isArray(data)) return data.reduce((total, chunk) => total + chunk.length, 0);
  return data instanceof ArrayBuffer ? data.byteLength : data.length;
}

function rawText(data: RawData): string {
  if (Array.isArray(data)) return Buffer.concat(data).toString("utf8");
  if (data instanceof ArrayBuffer) return Buffer.from(data).toString("utf8");
  return data.toString("utf8");
}

/**
 * Runs the daemon until SIGTERM / SIGINT, then shuts down gracefully and exits 0.
 * @throws ExaiError CONFIG_INVALID when it cannot listen.
 */
export async function runDaemon(config: Config, options: DaemonOptions = {}): Promise<Daemon> {
  const started = createDaemon(config, options);
  // Installed before the daemon listens, so a signal during start-up still shuts down cleanly.
  const stop = (signal: string) => {
    void started
      .then(async (daemon) => {
        daemon.runtime.logger.info({ signal }, "exai daemon stopping");
        await daemon.close();
        process.exit(0);
      })
      .catch(() => process.exit(1)); // start-up failed: the CLI reports that error
  };
  process.once("SIGTERM", () => stop("SIGTERM"));
  process.once("SIGINT", () => stop("SIGINT"));
  return started;
}
