/**
 * WebSocket connections of the daemon (the shim protocol of ../mcp/frames.ts): the hello
 * handshake (token on TCP, sessions, a configuration reload the hello asks for), frame dispatch
 * (list_tools, call_tool, cancel, health), liveness pings and the bounds: before its hello a peer
 * may send at most 64 KiB; a client whose unread backlog (ws.bufferedAmount) passes
 * EXAI_WS_MAX_BACKLOG_MB is closed with 4008.
 *
 * `accept` takes any socket with the `ws` WebSocket interface, so the protocol can be driven
 * without a network (an in-memory socket pair).
 */
import { randomUUID } from "node:crypto";
import type { Duplex } from "node:stream";
import type { RawData, WebSocket } from "ws";
import { ExaiError } from "../base/errors.js";
import type { Logger } from "../base/logging.js";
import { VERSION } from "../base/version.js";
import { encodeFrame, frameByteLength, frameText } from "../mcp/codec.js";
import {
  CLOSE_CODES,
  helloFrameSchema,
  MAX_PRE_HELLO_FRAME_BYTES,
  parseClientFrame,
  tokensEqual,
  type ServerFrame,
} from "../mcp/frames.js";
import { configOrigin } from "../mcp/config-origin.js";
import type { CallHandler } from "./calls.js";
import type { Generations } from "./generations.js";
import type { RequestConnection, RequestRegistry } from "./requests.js";
import { createSessionBook } from "./sessions.js";

/** How long a client closed for its backlog (4008) may take to read it and the close frame, ms. */
const BACKLOG_CLOSE_GRACE_MS = 5000;

/** One WebSocket client. */
export interface ClientConnection extends RequestConnection {
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

export interface ConnectionDeps {
  generations: Pick<Generations, "current" | "reloadForHello">;
  calls: Pick<CallHandler, "handleCall">;
  requests: Pick<RequestRegistry, "cancel" | "detach">;
  /** The body of a health_res (the details /health gives the owner). */
  health(): { status: string } & Record<string, unknown>;
  /** The TCP token; undefined when EXAI_WS_TOKEN=off. Never asked over the owner's socket. */
  token: string | undefined;
  daemonId: string;
  helloTimeoutMs: number;
  pingIntervalMs: number;
  /** EXAI_WS_MAX_BACKLOG_MB, bytes. */
  backlogBytes: number;
  logger: Logger;
}

export interface Connections {
  /**
   * Serves one accepted WebSocket. `rawSocket`, when given, is the byte stream under it: bytes
   * before the hello are counted there, so an oversize first frame is refused while it arrives.
   */
  accept(ws: WebSocket, options: { trusted: boolean; rawSocket?: Duplex }): ClientConnection;
  /** Connections that sent their hello. */
  greetedCount(): number;
  /** Number of open connections. */
  size(): number;
  /** Terminates every connection at once; returns how many there were. */
  terminateAll(): number;
  /** Closes every connection with 1001 (terminated after 500 ms) and stops the pings. */
  closeAll(): void;
}

/** The WebSocket side of one daemon. */
export function createConnections(deps: ConnectionDeps): Connections {
  const { logger, backlogBytes } = deps;
  const connections = new Set<ClientConnection>();
  const onHello = createHelloHandler(deps);
  const onFrame = createFrameHandler(deps);
  const pingTimer = startPings(connections, deps.pingIntervalMs, logger);

  const accept: Connections["accept"] = (ws, { trusted, rawSocket }) => {
    const connection: ClientConnection = {
      id: randomUUID(),
      ws,
      trusted,
      alive: true,
      send(frame: ServerFrame) {
        if (ws.readyState !== ws.OPEN) return;
        ws.send(encodeFrame(frame), (error) => {
          if (error) logger.debug({ err: error, connection: connection.id }, "frame not delivered");
        });
        if (ws.bufferedAmount > backlogBytes) dropForBacklog(logger, backlogBytes, connection);
      },
    };
    connections.add(connection);
    connection.helloTimer = setTimeout(
      () =>
        closeWith(
          logger,
          connection,
          CLOSE_CODES.HELLO_TIMEOUT,
          `hello timeout: no hello within ${deps.helloTimeoutMs} ms`,
        ),
      deps.helloTimeoutMs,
    );
    connection.helloTimer.unref();
    // Counts the raw bytes until the hello is handled, so an oversize first frame is refused while it
    // arrives instead of after up to MAX_FRAME_BYTES were buffered. ws parses each chunk (and emits
    // the hello) in its own data listener, which runs before this one; counted bytes therefore all
    // belong to the first frame (its header is at most 14 bytes).
    let preHelloBytes = 0;
    const countPreHello = (chunk: Buffer) => {
      if (connection.sessionId !== undefined) {
        rawSocket?.off("data", countPreHello);
        return;
      }
      preHelloBytes += chunk.length;
      if (preHelloBytes > MAX_PRE_HELLO_FRAME_BYTES + 14) refuseBigBeforeHello(logger, connection, rawSocket);
    };
    rawSocket?.on("data", countPreHello);
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
      } else if (frameByteLength(data) > MAX_PRE_HELLO_FRAME_BYTES)
        refuseBigBeforeHello(logger, connection, rawSocket);
      else onHello(connection, data, isBinary);
    });
    ws.on("close", (code) => {
      clearTimeout(connection.helloTimer);
      connections.delete(connection);
      deps.requests.detach(connection.id);
      logger.info({ connection: connection.id, session: connection.sessionId, code }, "WebSocket closed");
    });
    return connection;
  };

  return {
    accept,
    greetedCount() {
      let count = 0;
      for (const connection of connections) if (connection.sessionId !== undefined) count++;
      return count;
    },
    size: () => connections.size,
    terminateAll() {
      const count = connections.size;
      for (const connection of connections) connection.ws.terminate();
      return count;
    },
    closeAll() {
      clearInterval(pingTimer);
      for (const connection of connections) {
        connection.ws.close(CLOSE_CODES.GOING_AWAY, "daemon shutting down");
        setTimeout(() => connection.ws.terminate(), 500).unref();
      }
    },
  };
}

function closeWith(logger: Logger, connection: ClientConnection, code: number, reason: string): void {
  logger.info({ connection: connection.id, code, reason }, "closing WebSocket connection");
  connection.ws.close(code, reason);
}

/** The close code and reason for a hello over TCP without the right token (undefined: it may pass). */
function tokenProblem(
  expected: string | undefined,
  connection: ClientConnection,
  token: string | undefined,
): { code: number; reason: string } | undefined {
  if (expected === undefined || connection.trusted) return undefined;
  if (token === undefined)
    return {
      code: CLOSE_CODES.TOKEN_MISSING,
      reason: "token required: send the daemon token (EXAI_WS_TOKEN or EXAI_DATA_DIR/daemon.token) in hello",
    };
  if (!tokensEqual(expected, token))
    return {
      code: CLOSE_CODES.UNAUTHORIZED,
      reason:
        "unauthorized: the token does not match the daemon's (EXAI_WS_TOKEN or EXAI_DATA_DIR/daemon.token)",
    };
  return undefined;
}

/** Before the hello, a frame over 64 KiB closes the connection (1009) and stops reading from it. */
function refuseBigBeforeHello(
  logger: Logger,
  connection: ClientConnection,
  socket: Duplex | undefined,
): void {
  if (connection.ws.readyState !== connection.ws.OPEN) return;
  closeWith(
    logger,
    connection,
    CLOSE_CODES.TOO_BIG,
    `frame before hello larger than ${MAX_PRE_HELLO_FRAME_BYTES / 1024} KiB`,
  );
  socket?.pause();
  setTimeout(() => connection.ws.terminate(), 500).unref();
}

/**
 * A client that does not read what it is sent: closed with 4008 (nothing more is queued for it),
 * then cut after BACKLOG_CLOSE_GRACE_MS if it has not read its backlog and the close by then.
 */
function dropForBacklog(logger: Logger, backlogBytes: number, connection: ClientConnection): void {
  if (connection.ws.readyState !== connection.ws.OPEN) return;
  logger.warn(
    { connection: connection.id, backlog_bytes: connection.ws.bufferedAmount, limit_bytes: backlogBytes },
    "client does not read its socket; disconnecting",
  );
  closeWith(
    logger,
    connection,
    CLOSE_CODES.BACKLOG,
    `backlog: more than ${Math.round(backlogBytes / 1024 / 1024)} MiB unread (EXAI_WS_MAX_BACKLOG_MB); read your socket`,
  );
  setTimeout(() => connection.ws.terminate(), BACKLOG_CLOSE_GRACE_MS).unref();
}

/** The handler of a connection's first frame: it must be a hello (with the token over TCP). */
function createHelloHandler(
  deps: ConnectionDeps,
): (connection: ClientConnection, data: RawData, isBinary: boolean) => void {
  const { logger } = deps;
  const sessionFor = createSessionBook();
  return (connection: ClientConnection, data: RawData, isBinary: boolean) => {
    clearTimeout(connection.helloTimer);
    let value: unknown;
    try {
      value = isBinary ? undefined : JSON.parse(frameText(data));
    } catch {
      value = undefined; // not JSON: answered with close 4000 below
    }
    const hello = helloFrameSchema.safeParse(value);
    if (!hello.success) {
      closeWith(
        logger,
        connection,
        CLOSE_CODES.INVALID_HELLO,
        "invalid hello: the first frame must be {op:'hello'}",
      );
      return;
    }
    const refused = tokenProblem(deps.token, connection, hello.data.token);
    if (refused) {
      closeWith(logger, connection, refused.code, refused.reason);
      return;
    }
    const session = sessionFor(hello.data);
    // Marks the connection greeted at once (frames that follow are calls), the ack waits for a reload.
    connection.sessionId = session.sessionId;
    const client = hello.data.client;
    connection.client = client ? `${client.name ?? "?"}/${client.version ?? "?"}` : undefined;
    connection.ready = deps.generations.reloadForHello(hello.data, connection.trusted).then(() => {
      connection.ready = undefined;
      const gen = deps.generations.current();
      const origin = configOrigin(gen.config);
      connection.send({
        op: "hello_ack",
        ok: true,
        session_id: session.sessionId,
        resume_secret: session.secret,
        server_version: VERSION,
        daemon_id: deps.daemonId,
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
}

/** The handler of every frame after the hello. */
function createFrameHandler(
  deps: ConnectionDeps,
): (connection: ClientConnection, data: RawData, isBinary: boolean) => void {
  const { logger } = deps;
  return (connection: ClientConnection, data: RawData, isBinary: boolean) => {
    if (isBinary) {
      connection.send({
        op: "error",
        code: "BAD_FRAME",
        message: "binary frames are not supported; send JSON text",
      });
      return;
    }
    const parsed = parseClientFrame(frameText(data));
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
          tools: deps.generations.current().tools as Array<{
            name: string;
            inputSchema: Record<string, unknown>;
          }>,
        });
        return;
      case "call_tool":
        deps.calls.handleCall(connection, frame);
        return;
      case "cancel": {
        const cancelled = deps.requests.cancel(
          frame.request_id,
          connection.sessionId,
          new ExaiError("CANCELLED", `the client cancelled request ${frame.request_id}`),
        );
        logger.debug({ request_id: frame.request_id, session: connection.sessionId, cancelled }, "cancel");
        return;
      }
      case "health":
        connection.send({ op: "health_res", ...deps.health() });
        return;
    }
  };
}

/** Pings every connection each `intervalMs`; one that missed the previous pong is terminated. */
function startPings(connections: Set<ClientConnection>, intervalMs: number, logger: Logger): NodeJS.Timeout {
  const timer = setInterval(() => {
    for (const connection of connections) {
      if (!connection.alive) {
        logger.info({ connection: connection.id }, "peer missed a ping; terminating");
        connection.ws.terminate();
        continue;
      }
      connection.alive = false;
      connection.ws.ping();
    }
  }, intervalMs);
  timer.unref();
  return timer;
}
