/**
 * `/mcp`: MCP Streamable HTTP on the daemon's port, for clients that speak HTTP themselves
 * (SPEC §7). One StreamableHTTPServerTransport and one MCP server (createMcpServer, ceiling
 * "daemon") per session; the session id is the admission session.
 *
 * Security: the Host header must name this daemon (localhost / 127.0.0.1 / [::1] / EXAI_WS_HOST,
 * with the port) — a DNS-rebinding page reaching 127.0.0.1 sends its own host name and gets 403 —
 * and a bearer token is required whenever EXAI_WS_TOKEN is set (401 otherwise).
 * JSON responses are never enabled: they would drop progress notifications.
 */
import { randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { isInitializeRequest } from "@modelcontextprotocol/sdk/types.js";
import type { Server } from "@modelcontextprotocol/sdk/server/index.js";
import type { Logger } from "../logging.js";
import type { Executor } from "../runtime/executor.js";
import type { Runtime } from "../runtime/runtime.js";
import { createMcpServer } from "../server/mcp.js";
import { tokensEqual } from "./protocol.js";

export interface McpHttpOptions {
  runtime: Runtime;
  /** The (instrumented) executor the sessions call. */
  executor: Executor;
  /** The daemon ceiling, ms (EXAI_WS_CALL_TIMEOUT). */
  ceilingMs: number;
  /** EXAI_WS_TOKEN; undefined = no authentication. */
  token?: string;
  /** `host:port` values the Host header may take (lower case). Read per request (the port is known after listen). */
  allowedHosts: () => ReadonlySet<string>;
  logger: Logger;
  /** Largest request body, bytes. */
  maxBodyBytes: number;
  /** A session with no request for this long is closed, ms (default 30 min). */
  sessionIdleMs?: number;
}

export interface McpHttpEndpoint {
  /** Handles one request to /mcp (any method). Never throws. */
  handle(request: IncomingMessage, response: ServerResponse): Promise<void>;
  /** Open sessions. */
  sessions(): number;
  /** Refuse new sessions from now on (graceful shutdown). */
  stopAccepting(): void;
  /** Closes every session. */
  close(): Promise<void>;
}

interface Session {
  id: string;
  transport: StreamableHTTPServerTransport;
  server: Server;
  /** Requests being served now (an open GET stream counts). */
  active: number;
  lastSeen: number;
  closing: boolean;
}

/** Sends a JSON-RPC-shaped error (what MCP HTTP clients expect on a non-2xx reply). */
function sendError(
  response: ServerResponse,
  status: number,
  code: number,
  message: string,
  headers: Record<string, string> = {},
): void {
  if (response.headersSent) {
    response.end();
    return;
  }
  response.writeHead(status, { "content-type": "application/json", ...headers });
  response.end(JSON.stringify({ jsonrpc: "2.0", error: { code, message }, id: null }));
}

/**
 * True when a request may come from `origin`: no Origin header (a native client such as the shim),
 * or a page served from this daemon's own host:port. Browsers always send Origin on WebSocket
 * handshakes and cross-origin fetches, so any other web page is refused.
 */
export function isAllowedOrigin(origin: string | undefined, allowedHosts: ReadonlySet<string>): boolean {
  if (origin === undefined) return true;
  try {
    return allowedHosts.has(new URL(origin).host.toLowerCase());
  } catch {
    // "null" (sandboxed frames, file://) or garbage: not one of ours.
    return false;
  }
}

/**
 * Why a request must be refused (403) before anything else, or undefined when it may proceed: its
 * Host header must name this daemon (DNS rebinding) and its Origin, when present, too (web pages).
 * Used by /mcp, /health, /metrics and every other HTTP path of the daemon.
 */
export function hostOrOriginProblem(
  request: IncomingMessage,
  allowedHosts: ReadonlySet<string>,
): string | undefined {
  const host = (request.headers.host ?? "").toLowerCase();
  if (!allowedHosts.has(host)) {
    return `Forbidden: Host header ${JSON.stringify(host.slice(0, 100))} is not this daemon; use http://127.0.0.1:<port>/ or http://localhost:<port>/`;
  }
  if (!isAllowedOrigin(request.headers.origin, allowedHosts))
    return "Forbidden: cross-origin requests to the daemon are not allowed";
  return undefined;
}

/** Reads a request body up to `limit` bytes; undefined when it is larger. */
function readBody(request: IncomingMessage, limit: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let tooBig = false;
    request.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) tooBig = true;
      else if (!tooBig) chunks.push(chunk);
    });
    request.on("end", () => resolve(tooBig ? undefined : Buffer.concat(chunks)));
    request.on("error", reject);
    request.on("close", () => {
      if (!request.complete) reject(new Error("the client closed the request before its body ended"));
    });
  });
}

export function createMcpHttpEndpoint(options: McpHttpOptions): McpHttpEndpoint {
  const sessions = new Map<string, Session>();
  const idleMs = options.sessionIdleMs ?? 30 * 60_000;
  let accepting = true;

  const closeSession = async (session: Session) => {
    if (session.closing) return;
    session.closing = true;
    sessions.delete(session.id);
    // Closing the server closes its transport, which aborts the session's calls (extra.signal).
    await session.server
      .close()
      .catch((error: unknown) =>
        options.logger.debug({ err: error, session: session.id }, "closing an MCP session failed"),
      );
  };

  const idleSweep = setInterval(
    () => {
      const cutoff = performance.now() - idleMs;
      for (const session of sessions.values()) {
        if (session.active === 0 && session.lastSeen < cutoff) void closeSession(session);
      }
    },
    Math.min(idleMs, 60_000),
  );
  idleSweep.unref();

  const openSession = async (): Promise<Session> => {
    const id = randomUUID();
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: () => id });
    const server = createMcpServer(options.runtime, {
      sessionId: `mcp-${id}`,
      ceiling: { layer: "daemon", ms: options.ceilingMs },
      executor: options.executor,
    });
    const session: Session = {
      id,
      transport,
      server,
      active: 0,
      lastSeen: performance.now(),
      closing: false,
    };
    transport.onclose = () => {
      if (!session.closing) void closeSession(session);
    };
    await server.connect(transport);
    return session;
  };

  const authorised = (request: IncomingMessage): boolean => {
    if (options.token === undefined) return true;
    const header = request.headers.authorization ?? "";
    const match = /^Bearer\s+(.+)$/i.exec(header.trim());
    return match !== null && tokensEqual(options.token, match[1] ?? "");
  };

  const handle = async (request: IncomingMessage, response: ServerResponse): Promise<void> => {
    const forbidden = hostOrOriginProblem(request, options.allowedHosts());
    if (forbidden !== undefined) {
      sendError(response, 403, -32000, forbidden);
      return;
    }
    if (!authorised(request)) {
      sendError(response, 401, -32001, "Unauthorized: send Authorization: Bearer <EXAI_WS_TOKEN>", {
        "www-authenticate": 'Bearer realm="exai"',
      });
      return;
    }
    const sessionHeader = request.headers["mcp-session-id"];
    const sessionId = Array.isArray(sessionHeader) ? sessionHeader[0] : sessionHeader;
    let body: unknown;
    if (request.method === "POST") {
      const raw = await readBody(request, options.maxBodyBytes);
      if (raw === undefined) {
        sendError(response, 413, -32600, `request body larger than ${options.maxBodyBytes} bytes`);
        return;
      }
      try {
        body = JSON.parse(raw.toString("utf8"));
      } catch {
        // Reported to the client as a JSON-RPC parse error; nothing to log.
        sendError(response, 400, -32700, "Parse error: the body is not valid JSON");
        return;
      }
    }

    let session = sessionId !== undefined ? sessions.get(sessionId) : undefined;
    if (sessionId !== undefined && !session) {
      sendError(response, 404, -32001, "Session not found: start a new session with initialize");
      return;
    }
    if (!session) {
      const initialize =
        request.method === "POST" &&
        (Array.isArray(body)
          ? body.some((message) => isInitializeRequest(message))
          : isInitializeRequest(body));
      if (!initialize) {
        sendError(
          response,
          400,
          -32000,
          "Bad Request: no valid mcp-session-id header; send initialize first",
        );
        return;
      }
      if (!accepting) {
        sendError(response, 503, -32000, "the daemon is shutting down; retry in a moment", {
          "retry-after": "1",
        });
        return;
      }
      session = await openSession();
      sessions.set(session.id, session);
    }

    const current = session;
    current.active++;
    current.lastSeen = performance.now();
    response.once("close", () => {
      current.active--;
      current.lastSeen = performance.now();
    });
    await current.transport.handleRequest(request, response, body);
    // An initialize that failed leaves a transport without a session: drop it.
    if (current.transport.sessionId === undefined) await closeSession(current);
  };

  return {
    async handle(request, response) {
      try {
        await handle(request, response);
      } catch (error) {
        options.logger.warn({ err: error }, "the /mcp request failed");
        sendError(response, 500, -32603, "Internal error while handling the MCP request");
      }
    },
    sessions: () => sessions.size,
    stopAccepting() {
      accepting = false;
    },
    async close() {
      accepting = false;
      clearInterval(idleSweep);
      await Promise.all([...sessions.values()].map(closeSession));
    },
  };
}
