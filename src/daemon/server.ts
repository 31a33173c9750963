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
 *
 * Files: ./http-routes.ts (HTTP routes and upgrades), ./connection.ts (WebSocket connections:
 * hello, frames, bounds) with ./sessions.ts, ./calls.ts (call handling) with ./requests.ts,
 * ./generations.ts (configuration reloads), ./health.ts, ./metrics.ts, ./http-mcp.ts (/mcp).
 */
import { randomUUID } from "node:crypto";
import type http from "node:http";
import { WebSocketServer, type WebSocket } from "ws";
import type { Config } from "../config/load.js";
import { ExaiError } from "../base/errors.js";
import type { Logger } from "../base/logging.js";
import type { Executor } from "../runtime/executor.js";
import { createRuntime, type Runtime } from "../runtime/runtime.js";
import { CLOSE_CODES, HELLO_TIMEOUT_MS, PING_INTERVAL_MS } from "../mcp/frames.js";
import {
  clearStaleSocket,
  ensurePrivateDataDir,
  resolveTcpToken,
  socketPath as socketPathIn,
} from "../mcp/trust.js";
import { createCallHandler, type CallHandler } from "./calls.js";
import { createConnections, type Connections } from "./connection.js";
import { createGenerations, type Generations } from "./generations.js";
import { createHealthReport } from "./health.js";
import { createMcpHttpEndpoint, type McpHttpEndpoint } from "./http-mcp.js";
import { createHttpRoutes } from "./http-routes.js";
import { announce, listenOnSocket, listenOnTcp, shutDown } from "./lifecycle.js";
import { createDaemonMetrics, type DaemonMetrics } from "./metrics.js";
import { createRequestRegistry, type RequestRegistry } from "./requests.js";

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
   * Serves a socket with the `ws` WebSocket interface as a connection accepted on the owner's
   * socket (trusted: no token), for links that are not a network socket (an in-memory pair).
   * While the daemon drains it is closed with 1001 at once.
   */
  serve(socket: WebSocket): void;
  /**
   * Graceful shutdown: refuses new connections and calls, waits up to `drainMs` (default: the
   * daemon ceiling) for calls in flight, delivers their results, closes every socket and (when it
   * built it) the runtime. Idempotent.
   */
  close(options?: { drainMs?: number }): Promise<void>;
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
  const logger: Logger = firstRuntime.logger.child({ component: "daemon" });
  const ceilingMs = config.timeouts.daemonMs;
  const daemonId = randomUUID();
  let boundPort = 0;
  let draining = false;
  const isDraining = () => draining;

  const metrics = createDaemonMetrics({
    admission: () => generations.current().runtime.admission,
    inflight: () => generations.current().executor.inflight(),
    sessions: () => ({ websocket: connections.greetedCount(), mcp: mcp.sessions() }),
  });
  const generations = createGenerations({
    config,
    runtime: firstRuntime,
    ownsRuntime,
    token,
    instrument: (executor) => metrics.instrument(executor),
    reloadConfig: options.reloadConfig,
    draining: isDraining,
    ceilingMs,
    logger,
  });
  const executor = generations.executor;
  const requests = createRequestRegistry({
    resultTtlMs: config.daemon.resultTtlMs,
    reconnectGraceMs: options.reconnectGraceMs ?? 10_000,
    maxCachedBytes: config.limits.resultCacheBytes,
  });
  const calls = createCallHandler({ executor, requests, metrics, ceilingMs, draining: isDraining, logger });
  const allowedHosts = () => {
    const names = new Set(["localhost", "127.0.0.1", "[::1]", host.includes(":") ? `[${host}]` : host]);
    return new Set([...names].map((name) => `${name.toLowerCase()}:${boundPort}`));
  };
  const mcp = createDaemonMcp({
    config,
    options,
    executor,
    calls,
    generations,
    metrics,
    token,
    allowedHosts,
    draining: isDraining,
    logger,
  });
  const { connections, wss, socketServer, httpServer } = createFrontDoors({
    config,
    options,
    generations,
    calls,
    requests,
    mcp,
    metrics,
    token,
    daemonId,
    allowedHosts,
    draining: isDraining,
    boundPort: () => boundPort,
    logger,
  });

  try {
    await listenOnSocket(socketServer, socketPath);
  } catch (error) {
    connections.closeAll();
    requests.close(new ExaiError("CANCELLED", "the daemon did not start"));
    await mcp.close();
    if (ownsRuntime) await firstRuntime.close();
    throw error;
  }
  boundPort = await listenOnTcp(httpServer, host, options.port ?? config.daemon.port, logger);
  const url = announce({ host, boundPort, socketPath, token, config, generations, logger });

  let closing: Promise<void> | undefined;
  const close = (closeOptions: { drainMs?: number } = {}) => {
    draining = true;
    closing ??= shutDown({
      drainMs: closeOptions.drainMs ?? ceilingMs,
      mcp,
      executor,
      requests,
      connections,
      wss,
      servers: [httpServer, socketServer],
      generations,
      logger,
    });
    return closing;
  };

  return {
    host,
    port: boundPort,
    url,
    socketPath,
    token,
    get runtime() {
      return generations.current().runtime;
    },
    reload: generations.reload,
    serve(socket) {
      if (draining) socket.close(CLOSE_CODES.GOING_AWAY, "daemon shutting down");
      else connections.accept(socket, { trusted: true });
    },
    close,
  };
}

/**
 * The daemon's doors: the WebSocket connections, the health report, and its two HTTP servers (the
 * owner-only socket's and the TCP one), not yet listening.
 */
function createFrontDoors(deps: {
  config: Config;
  options: DaemonOptions;
  generations: Generations;
  calls: CallHandler;
  requests: RequestRegistry;
  mcp: McpHttpEndpoint;
  metrics: DaemonMetrics;
  token: string | undefined;
  daemonId: string;
  allowedHosts(): Set<string>;
  draining(): boolean;
  boundPort(): number;
  logger: Logger;
}): { connections: Connections; wss: WebSocketServer; socketServer: http.Server; httpServer: http.Server } {
  const { config, options, generations, calls, requests, mcp, metrics, token, daemonId } = deps;
  const { allowedHosts, draining, boundPort, logger } = deps;
  const health = createHealthReport({
    config,
    current: generations.current,
    inflight: () => generations.executor.inflight(),
    requests,
    sessions: () => ({ websocket: connections.greetedCount(), mcp: mcp.sessions() }),
    draining,
    boundPort,
    tokenRequired: token !== undefined,
    daemonId,
  });
  const connections = createConnections({
    generations,
    calls,
    requests,
    health: health.details,
    token,
    daemonId,
    helloTimeoutMs: options.helloTimeoutMs ?? HELLO_TIMEOUT_MS,
    pingIntervalMs: options.pingIntervalMs ?? PING_INTERVAL_MS,
    backlogBytes: config.limits.wsBacklogBytes,
    logger,
  });
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: options.maxPayloadBytes ?? config.limits.messageBytes,
  });
  const makeServer = createHttpRoutes({
    mcp,
    metrics,
    health,
    connections,
    wss,
    allowedHosts,
    token,
    testHooks: options.testHooks === true,
    draining,
    logger,
  });
  return { connections, wss, socketServer: makeServer(true), httpServer: makeServer(false) };
}

/** The `/mcp` endpoint of the daemon; while it drains, open sessions get OVER_CAPACITY for new calls. */
function createDaemonMcp(deps: {
  config: Config;
  options: DaemonOptions;
  executor: Executor;
  calls: CallHandler;
  generations: Generations;
  metrics: DaemonMetrics;
  token: string | undefined;
  allowedHosts(): Set<string>;
  draining(): boolean;
  logger: Logger;
}): McpHttpEndpoint {
  const { config, executor, calls, token } = deps;
  const mcpExecutor: Executor = {
    ...executor,
    call: (request) =>
      deps.draining() ? Promise.resolve(calls.shuttingDownOutcome(request)) : executor.call(request),
  };
  return createMcpHttpEndpoint({
    runtime: () => deps.generations.current().runtime,
    executor: mcpExecutor,
    ceilingMs: config.timeouts.daemonMs,
    ...(token !== undefined ? { token } : {}),
    allowedHosts: deps.allowedHosts,
    logger: deps.logger,
    maxBodyBytes: deps.options.maxPayloadBytes ?? config.limits.messageBytes,
    maxSessions: config.limits.mcpSessions,
    onEviction: () => deps.metrics.recordMcpEviction(),
  });
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
