/**
 * `exai daemon` (SPEC §7): one process that many MCP clients share. It serves
 *   - WebSocket — the shim protocol of ./protocol.ts (hello, list_tools, call_tool → ack /
 *     progress / result, cancel, health);
 *   - `/mcp` — MCP Streamable HTTP (./http-mcp.ts);
 *   - `/health` (JSON) and `/metrics` (Prometheus text, ./metrics.ts)
 * on two listeners:
 *   - the Unix socket `EXAI_DATA_DIR/daemon.sock` (the shim's only way in). EXAI_DATA_DIR is made
 *     the user's private directory (owner-only, 0700) first, so only the daemon's own uid can
 *     connect: no token is asked there, and /health answers in full. A leftover socket is removed
 *     only when it is ours and nothing answers on it; when another daemon answers, this one does
 *     not start (CONFIG_INVALID).
 *   - TCP `EXAI_WS_HOST:EXAI_WS_PORT`, for HTTP MCP clients and third-party WebSocket clients. Every
 *     endpoint there needs the token (hello `token`, or `Authorization: Bearer <token>`):
 *     EXAI_WS_TOKEN, else the one generated at first start into EXAI_DATA_DIR/daemon.token
 *     (0600, reused afterwards); EXAI_WS_TOKEN=off disables it with a warning at start. Without the
 *     token `/health` answers liveness only ({status, version}); `/mcp`, `/metrics` answer 403 with
 *     a JSON-RPC error saying "token required" and how to send it (never 401 +
 *     `WWW-Authenticate`, which MCP clients take as the start of an OAuth flow). When the port is
 *     taken (a squatter, or another daemon) the daemon logs a warning and keeps serving the socket.
 *
 * Sessions: hello_ack carries `session_id` and `resume_secret`; a hello resumes a session only with
 * its secret (constant-time comparison), else it is given a fresh session. Session ids never
 * appear in /health, /metrics or the health op.
 *
 * Configuration: the daemon re-reads its configuration (`reloadConfig`, from the CLI) on SIGHUP
 * and when a shim's hello reports another configuration file or another content of it. New calls
 * then run on a new runtime; calls in flight finish on the old one, which is closed after them.
 *
 * Bounds: a client whose unread backlog (ws.bufferedAmount) passes EXAI_WS_MAX_BACKLOG_MB is
 * closed with 4008; frames are limited to EXAI_MAX_MESSAGE_MB; cached results to
 * EXAI_WS_RESULT_CACHE_MB; `/mcp` sessions to EXAI_MCP_MAX_SESSIONS.
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
import { randomBytes, randomUUID } from "node:crypto";
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import { WebSocketServer, type RawData, type WebSocket } from "ws";
import type { Config } from "../config/load.js";
import { ExaiError, toExaiError } from "../base/errors.js";
import type { Logger } from "../base/logging.js";
import type { CallOutcome, CallRequest, Executor } from "../runtime/executor.js";
import { createRuntime, type Runtime } from "../runtime/runtime.js";
import { listTools, toCallToolResult } from "../mcp/server.js";
import { VERSION } from "../base/version.js";
import {
  bearerToken,
  createMcpHttpEndpoint,
  hostOrOriginProblem,
  isAllowedOrigin,
  sendTokenRequired,
} from "./http-mcp.js";
import { createDaemonMetrics } from "./metrics.js";
import {
  CLOSE_CODES,
  configOrigin,
  HELLO_TIMEOUT_MS,
  helloFrameSchema,
  MAX_PRE_HELLO_FRAME_BYTES,
  parseClientFrame,
  PING_INTERVAL_MS,
  providerFingerprintOf,
  tokensEqual,
  type CallToolFrame,
  type HelloFrame,
  type ServerFrame,
} from "../mcp/frames.js";
import { createRequestRegistry, type CallResultBody, type RequestConnection } from "./requests.js";
import {
  clearStaleSocket,
  ensurePrivateDataDir,
  resolveTcpToken,
  socketPath as socketPathIn,
} from "../mcp/trust.js";

export interface DaemonOptions {
  /** Listen address; default EXAI_WS_HOST. */
  host?: string;
  /** Port (0 = any free port); default EXAI_WS_PORT. */
  port?: number;
  /** The first frame must be a hello within this many ms (default 15,000). */
  helloTimeoutMs?: number;
  /** WebSocket ping cadence, ms; a peer that missed the previous pong is terminated (default 45,000). */
  pingIntervalMs?: number;
  /** Largest WebSocket frame / HTTP body accepted, bytes (default EXAI_MAX_MESSAGE_MB). */
  maxPayloadBytes?: number;
  /** The Unix socket to listen on (default EXAI_DATA_DIR/daemon.sock). */
  socketPath?: string;
  /**
   * Re-reads the configuration (the CLI's loader). Called on SIGHUP (runDaemon) and when a hello
   * reports another configuration file or content; without it the configuration never changes.
   * @throws ExaiError CONFIG_INVALID (the daemon then keeps its current configuration).
   */
  reloadConfig?: () => Config;
  /** How long a call keeps running after its client disconnected, waiting for a re-attach, ms (default 10,000). */
  reconnectGraceMs?: number;
  /** Enables `POST /debug/drop-connections` (tests only: EXAI_DAEMON_TEST_HOOKS=1). */
  testHooks?: boolean;
  /** A runtime to serve (tests); by default one is built from the config and closed with the daemon. */
  runtime?: Runtime;
}

export interface Daemon {
  readonly host: string;
  /** The TCP port actually bound (useful with port 0); 0 when the TCP listener could not bind. */
  readonly port: number;
  /** ws://host:port/ (TCP; needs the token unless EXAI_WS_TOKEN=off) */
  readonly url: string;
  /** The Unix socket the shim connects to (no token: only the owner's uid can reach it). */
  readonly socketPath: string;
  /** The TCP token (EXAI_WS_TOKEN or the generated one); undefined when EXAI_WS_TOKEN=off. */
  readonly token: string | undefined;
  /** The runtime new calls run on (changes after a configuration reload). */
  readonly runtime: Runtime;
  /**
   * Re-reads the configuration through `reloadConfig` and, when that succeeds, moves new calls to
   * a fresh runtime (calls in flight finish on the old one). Resolves false when there is no
   * `reloadConfig` or it failed (the current configuration stays). Never rejects.
   */
  reload(reason: string): Promise<boolean>;
  /**
   * Graceful shutdown: refuses new connections and calls, waits up to `drainMs` (default: the
   * daemon ceiling) for calls in flight, delivers their results, closes every socket and (when it
   * built it) the runtime. Idempotent.
   */
  close(options?: { drainMs?: number }): Promise<void>;
}

interface ClientConnection extends RequestConnection {
  ws: WebSocket;
  /** Reached through the owner-only Unix socket (no token needed). */
  trusted: boolean;
  /** Set by the hello. */
  sessionId?: string;
  client?: string;
  /** Settles once the hello_ack was sent; frames arriving before that wait for it. */
  ready?: Promise<void>;
  alive: boolean;
  helloTimer?: NodeJS.Timeout;
}

const newTraceId = () => randomUUID().replace(/-/g, "");

/** How long a client closed for its backlog (4008) may take to read it and the close frame, ms. */
const BACKLOG_CLOSE_GRACE_MS = 5000;

/** Most resumable sessions remembered (oldest forgotten first). */
const MAX_REMEMBERED_SESSIONS = 10_000;

/** What new calls run on: one configuration and the runtime built from it. */
interface Generation {
  config: Config;
  runtime: Runtime;
  executor: Executor;
  tools: ReturnType<typeof listTools>;
  owned: boolean;
  fingerprint: Record<string, string>;
}

/**
 * Starts the daemon and resolves once it listens on its Unix socket (and, when it can bind, on TCP).
 * @throws ExaiError CONFIG_INVALID when EXAI_DATA_DIR is not the user's private directory, another
 *   daemon already serves its socket, the socket cannot be bound, or the token file cannot be written.
 */
export async function createDaemon(config: Config, options: DaemonOptions = {}): Promise<Daemon> {
  const host = options.host ?? config.daemon.host;
  ensurePrivateDataDir(config.dataDir);
  const socketPath = options.socketPath ?? socketPathIn(config.dataDir);
  const token = resolveTcpToken(config);
  await clearStaleSocket(socketPath);
  const ownsRuntime = options.runtime === undefined;
  const firstRuntime = options.runtime ?? createRuntime(config, { mode: "daemon" });
  const rootLogger = firstRuntime.logger;
  const logger: Logger = rootLogger.child({ component: "daemon" });
  const helloTimeoutMs = options.helloTimeoutMs ?? HELLO_TIMEOUT_MS;
  const maxPayload = options.maxPayloadBytes ?? config.limits.messageBytes;
  const ceilingMs = config.timeouts.daemonMs;
  const backlogBytes = config.limits.wsBacklogBytes;
  const startedAt = performance.now();
  const daemonId = randomUUID();

  const connections = new Set<ClientConnection>();
  /** Resumable sessions: session_id → resume_secret. Insertion order = age. */
  const sessionSecrets = new Map<string, string>();
  let boundPort = 0;
  let draining = false;

  const metrics = createDaemonMetrics({
    admission: () => gen.runtime.admission,
    inflight: () => gen.executor.inflight(),
    sessions: () => ({ websocket: greetedCount(), mcp: mcp.sessions() }),
  });
  const makeGeneration = (genConfig: Config, runtime: Runtime, owned: boolean): Generation => {
    // The generated token is a secret like EXAI_WS_TOKEN: never in a result, error or log line.
    if (token !== undefined) runtime.redactor.add(token);
    const executor = metrics.instrument(runtime.executor);
    return {
      config: genConfig,
      runtime,
      executor,
      tools: listTools(executor.tools()),
      owned,
      fingerprint: providerFingerprintOf(genConfig),
    };
  };
  let gen = makeGeneration(config, firstRuntime, ownsRuntime);
  /** Generations replaced by a reload whose calls are still finishing. */
  const retired = new Set<Generation>();
  /** The executor of the current generation, read at each call. */
  const executor: Executor = {
    findTool: (name) => gen.executor.findTool(name),
    tools: () => gen.executor.tools(),
    call: (request) => gen.executor.call(request),
    budgetFor: (tool) => gen.executor.budgetFor(tool),
    inflight: () => gen.executor.inflight() + [...retired].reduce((n, old) => n + old.executor.inflight(), 0),
    onSummary: (listener) => gen.executor.onSummary(listener),
    abortAll: (reason) => {
      for (const old of retired) old.executor.abortAll(reason);
      gen.executor.abortAll(reason);
    },
    drain: async (timeoutMs) => {
      await Promise.all([gen, ...retired].map((one) => one.executor.drain(timeoutMs)));
    },
  };
  const requests = createRequestRegistry({
    resultTtlMs: config.daemon.resultTtlMs,
    reconnectGraceMs: options.reconnectGraceMs ?? 10_000,
    maxCachedBytes: config.limits.resultCacheBytes,
  });

  let reloading: Promise<boolean> | undefined;
  /** Configuration origins (file + sha256) hellos reported that a reload did not make ours: not retried. */
  const unmatchedOrigins = new Set<string>();
  const reload = (reason: string): Promise<boolean> => {
    const reloadConfig = options.reloadConfig;
    if (reloadConfig === undefined || draining) return Promise.resolve(false);
    reloading ??= (async () => {
      let next: Config;
      let runtime: Runtime;
      try {
        next = reloadConfig();
        runtime = createRuntime(next, { mode: "daemon", logger: rootLogger });
      } catch (error) {
        const failure = toExaiError(error, "daemon");
        logger.warn(
          { reason, error_code: failure.code, error: failure.message },
          "configuration not reloaded; keeping the current one",
        );
        return false;
      }
      const old = gen;
      gen = makeGeneration(next, runtime, true);
      unmatchedOrigins.clear();
      retired.add(old);
      logger.info(
        { reason, config_file: configOrigin(next).file, providers: runtime.registry.configuredProviders() },
        "configuration reloaded; new calls use it",
      );
      void old.executor.drain(ceilingMs).then(async () => {
        retired.delete(old);
        if (old.owned) await old.runtime.close();
      });
      return true;
    })().finally(() => {
      reloading = undefined;
    });
    return reloading;
  };

  let lastHelloReloadAt = Number.NEGATIVE_INFINITY;
  /**
   * A hello over the owner's socket reporting another configuration file (or content) than ours
   * triggers one reload for it (at most one per second; TCP clients never trigger one).
   */
  const reloadForHello = async (hello: HelloFrame, trusted: boolean): Promise<void> => {
    const reported = hello.config;
    if (!trusted || (reported?.env_file === undefined && reported?.env_sha256 === undefined)) return;
    const ours = configOrigin(gen.config);
    if (reported.env_file === ours.file && reported.env_sha256 === ours.fileSha256) return;
    const key = `${reported.env_file ?? ""}\n${reported.env_sha256 ?? ""}`;
    if (unmatchedOrigins.has(key) || performance.now() - lastHelloReloadAt < 1000) return;
    lastHelloReloadAt = performance.now();
    await reload("a client reported another configuration file");
    const now = configOrigin(gen.config);
    if (reported.env_file !== now.file || reported.env_sha256 !== now.fileSha256) {
      if (unmatchedOrigins.size >= 64) unmatchedOrigins.clear();
      unmatchedOrigins.add(key);
    }
  };

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
    runtime: () => gen.runtime,
    executor: mcpExecutor,
    ceilingMs,
    ...(token !== undefined ? { token } : {}),
    allowedHosts,
    logger,
    maxBodyBytes: maxPayload,
    maxSessions: config.limits.mcpSessions,
    onEviction: () => metrics.recordMcpEviction(),
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

  /** Liveness: all that a client without the token learns. */
  const liveness = () => ({ status: draining ? "draining" : "ok", version: VERSION });
  /** Details (socket, or TCP with the token). Session ids never appear: the session cap is summarised. */
  const health = () => {
    const admission = gen.runtime.admission.snapshot();
    const sessionCaps = Object.values(admission.session);
    return {
      ...liveness(),
      pid: process.pid,
      daemon_id: daemonId,
      uptime_s: Math.round((performance.now() - startedAt) / 100) / 10,
      calls_inflight: executor.inflight(),
      inflight: {
        ...admission,
        session: {
          busy_sessions: sessionCaps.length,
          inflight: sessionCaps.reduce((total, cap) => total + cap.inflight, 0),
          cap: gen.config.admission.session,
        },
      },
      requests: {
        running: requests.running(),
        cached: requests.cached(),
        cached_bytes: requests.cachedBytes(),
      },
      sessions: { websocket: greetedCount(), mcp: mcp.sessions() },
      providers: gen.runtime.registry.configuredProviders(),
      config_file: configOrigin(gen.config).file ?? null,
      tcp: { listening: boundPort !== 0, auth: token !== undefined },
      timeouts_s: {
        daemon: ceilingMs / 1000,
        shim: config.timeouts.shimMs / 1000,
        simple: config.timeouts.simpleToolMs / 1000,
        workflow: config.timeouts.workflowToolMs / 1000,
      },
    };
  };

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

  /** A fresh session, or the one the hello resumes when it presents that session's secret. */
  const sessionFor = (hello: HelloFrame): { sessionId: string; secret: string; resumed: boolean } => {
    const known = hello.session_id !== undefined ? sessionSecrets.get(hello.session_id) : undefined;
    if (
      hello.session_id !== undefined &&
      known !== undefined &&
      hello.resume_secret !== undefined &&
      tokensEqual(known, hello.resume_secret)
    ) {
      sessionSecrets.delete(hello.session_id); // re-inserted: the most recently used
      sessionSecrets.set(hello.session_id, known);
      return { sessionId: hello.session_id, secret: known, resumed: true };
    }
    const sessionId = randomUUID();
    const secret = randomBytes(32).toString("base64url");
    sessionSecrets.set(sessionId, secret);
    while (sessionSecrets.size > MAX_REMEMBERED_SESSIONS) {
      const oldest = sessionSecrets.keys().next().value;
      if (oldest === undefined) break;
      sessionSecrets.delete(oldest);
    }
    return { sessionId, secret, resumed: false };
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
    if (token !== undefined && !connection.trusted) {
      if (hello.data.token === undefined) {
        closeWith(
          connection,
          CLOSE_CODES.TOKEN_MISSING,
          "token required: send the daemon token (EXAI_WS_TOKEN or EXAI_DATA_DIR/daemon.token) in hello",
        );
        return;
      }
      if (!tokensEqual(token, hello.data.token)) {
        closeWith(
          connection,
          CLOSE_CODES.UNAUTHORIZED,
          "unauthorized: the token does not match the daemon's (EXAI_WS_TOKEN or EXAI_DATA_DIR/daemon.token)",
        );
        return;
      }
    }
    const session = sessionFor(hello.data);
    // Marks the connection greeted at once (frames that follow are calls), the ack waits for a reload.
    connection.sessionId = session.sessionId;
    const client = hello.data.client;
    connection.client = client ? `${client.name ?? "?"}/${client.version ?? "?"}` : undefined;
    connection.ready = reloadForHello(hello.data, connection.trusted).then(() => {
      connection.ready = undefined;
      const origin = configOrigin(gen.config);
      connection.send({
        op: "hello_ack",
        ok: true,
        session_id: session.sessionId,
        resume_secret: session.secret,
        server_version: VERSION,
        daemon_id: daemonId,
        config: {
          ...(origin.file !== undefined ? { env_file: origin.file } : {}),
          ...(origin.searched !== undefined ? { searched: origin.searched } : {}),
          provider_fingerprint: gen.fingerprint,
        },
      });
    });
    logger.info(
      {
        connection: connection.id,
        session: connection.sessionId,
        resumed: session.resumed,
        client: connection.client,
        trusted: connection.trusted,
      },
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
          tools: gen.tools as Array<{ name: string; inputSchema: Record<string, unknown> }>,
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

  /**
   * A client that does not read what it is sent: closed with 4008 (nothing more is queued for it),
   * then cut after BACKLOG_CLOSE_GRACE_MS if it has not read its backlog and the close by then.
   */
  const dropForBacklog = (connection: ClientConnection) => {
    if (connection.ws.readyState !== connection.ws.OPEN) return;
    logger.warn(
      { connection: connection.id, backlog_bytes: connection.ws.bufferedAmount, limit_bytes: backlogBytes },
      "client does not read its socket; disconnecting",
    );
    closeWith(
      connection,
      CLOSE_CODES.BACKLOG,
      `backlog: more than ${Math.round(backlogBytes / 1024 / 1024)} MiB unread (EXAI_WS_MAX_BACKLOG_MB); read your socket`,
    );
    setTimeout(() => connection.ws.terminate(), BACKLOG_CLOSE_GRACE_MS).unref();
  };

  wss.on("connection", (ws: WebSocket, request: IncomingMessage, trusted: boolean) => {
    const connection: ClientConnection = {
      id: randomUUID(),
      ws,
      trusted,
      alive: true,
      send(frame: ServerFrame) {
        if (ws.readyState !== ws.OPEN) return;
        ws.send(JSON.stringify(frame), (error) => {
          if (error) logger.debug({ err: error, connection: connection.id }, "frame not delivered");
        });
        if (ws.bufferedAmount > backlogBytes) dropForBacklog(connection);
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
      if (connection.sessionId !== undefined) {
        // Frames after the hello wait for its ack (which may wait for a configuration reload).
        const ready = connection.ready;
        if (ready === undefined) onFrame(connection, data, isBinary);
        else
          void ready.then(() => {
            if (ws.readyState === ws.OPEN) onFrame(connection, data, isBinary);
          });
      } else if (rawLength(data) > MAX_PRE_HELLO_FRAME_BYTES) refuseBigBeforeHello(connection, rawSocket);
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

  /** True when the request carries the TCP token (or no token is configured: EXAI_WS_TOKEN=off). */
  const hasToken = (request: IncomingMessage): boolean => {
    if (token === undefined) return true;
    const presented = bearerToken(request);
    return presented !== undefined && tokensEqual(token, presented);
  };

  const onRequest = async (request: IncomingMessage, response: ServerResponse, trusted: boolean) => {
    const path = (request.url ?? "/").split("?")[0] ?? "/";
    if (path !== "/mcp" && !trusted) {
      // /mcp answers these itself, in JSON-RPC shape. The owner-only socket needs neither check.
      const forbidden = hostOrOriginProblem(request, allowedHosts());
      if (forbidden !== undefined) {
        sendJson(response, 403, { error: forbidden });
        return;
      }
    }
    const authorised = trusted || hasToken(request);
    if (path === "/mcp") {
      await mcp.handle(request, response, trusted);
      return;
    }
    if (path === "/health" && request.method === "GET") {
      sendJson(response, 200, authorised ? health() : liveness());
      return;
    }
    if (path === "/metrics" && request.method === "GET") {
      if (!authorised) {
        sendTokenRequired(response);
        return;
      }
      const rendered = await metrics.render();
      response.writeHead(200, { "content-type": rendered.contentType });
      response.end(rendered.body);
      return;
    }
    if (path === "/debug/drop-connections" && request.method === "POST" && options.testHooks && authorised) {
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

  const makeServer = (trusted: boolean) => {
    const server = http.createServer((request, response) => {
      onRequest(request, response, trusted).catch((error: unknown) => {
        logger.warn({ err: error }, "HTTP request failed");
        if (!response.headersSent) sendJson(response, 500, { error: "internal error" });
        else response.end();
      });
    });
    server.on("clientError", (_error, socket) => socket.destroy());
    server.on("upgrade", (request: IncomingMessage, socket: Duplex, head: Buffer) => {
      const path = (request.url ?? "/").split("?")[0];
      const reject = (status: string) => {
        socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
      };
      if (draining) return reject("503 Service Unavailable");
      if (path !== "/" && path !== "/ws") return reject("404 Not Found");
      // Browsers send Origin on WebSocket handshakes (the shim does not): a web page must not reach the daemon.
      if (!trusted && !isAllowedOrigin(request.headers.origin, allowedHosts()))
        return reject("403 Forbidden");
      wss.handleUpgrade(request, socket, head, (ws) => wss.emit("connection", ws, request, trusted));
    });
    return server;
  };
  const socketServer = makeServer(true);
  const httpServer = makeServer(false);

  const cleanUpFailedStart = async () => {
    clearInterval(pingTimer);
    requests.close(new ExaiError("CANCELLED", "the daemon did not start"));
    await mcp.close();
    if (ownsRuntime) await firstRuntime.close();
  };

  try {
    await new Promise<void>((resolve, reject) => {
      socketServer.once("error", reject);
      socketServer.listen(socketPath, () => {
        socketServer.off("error", reject);
        resolve();
      });
    });
  } catch (error) {
    await cleanUpFailedStart();
    throw new ExaiError(
      "CONFIG_INVALID",
      `the daemon could not listen on its socket ${socketPath}: ${(error as Error).message}; check EXAI_DATA_DIR`,
      { cause: error, details: { variables: ["EXAI_DATA_DIR"] } },
    );
  }
  const port = options.port ?? config.daemon.port;
  try {
    await new Promise<void>((resolve, reject) => {
      httpServer.once("error", reject);
      httpServer.listen(port, host, () => {
        httpServer.off("error", reject);
        resolve();
      });
    });
    const address = httpServer.address();
    boundPort = typeof address === "object" && address !== null ? address.port : 0;
  } catch (error) {
    // The socket is the shim's way in: a squatter on the port must not stop the user's daemon.
    const code = (error as NodeJS.ErrnoException).code;
    logger.warn(
      { host, port, code },
      code === "EADDRINUSE"
        ? `TCP port ${port} on ${host} is taken by another process; serving the Unix socket only (set EXAI_WS_PORT to use /mcp over HTTP)`
        : `the daemon could not listen on ${host}:${port} (${(error as Error).message}); serving the Unix socket only (check EXAI_WS_HOST / EXAI_WS_PORT)`,
    );
  }
  const shownHost = host.includes(":") ? `[${host}]` : host;
  const url = `ws://${shownHost}:${boundPort}/`;
  if (token === undefined) {
    logger.warn(
      "EXAI_WS_TOKEN=off: the TCP endpoints (/mcp, WebSocket, /metrics) accept any local process without a token",
    );
  }
  logger.info(
    {
      url: boundPort !== 0 ? url : null,
      socket: socketPath,
      tools: gen.tools.length,
      providers: gen.runtime.registry.configuredProviders(),
      auth: token !== undefined,
      config_file: configOrigin(config).file ?? null,
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
      const socketClosed = new Promise<void>((resolve) => socketServer.close(() => resolve()));
      for (const connection of connections) {
        connection.ws.close(CLOSE_CODES.GOING_AWAY, "daemon shutting down");
        setTimeout(() => connection.ws.terminate(), 500).unref();
      }
      await mcp.close();
      wss.close();
      httpServer.closeAllConnections();
      socketServer.closeAllConnections();
      await Promise.race([
        Promise.all([serverClosed, socketClosed]),
        new Promise<void>((resolve) => setTimeout(resolve, 1000).unref()),
      ]);
      logger.info("exai daemon stopped");
      for (const one of [gen, ...retired]) if (one.owned) await one.runtime.close();
    })();
    return closing;
  };

  return {
    host,
    port: boundPort,
    url,
    socketPath,
    token,
    get runtime() {
      return gen.runtime;
    },
    reload,
    close,
  };
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
  process.on("SIGHUP", () => {
    void started.then((daemon) => daemon.reload("SIGHUP")).catch(() => undefined);
  });
  return started;
}
