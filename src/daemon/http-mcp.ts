/**
 * `/mcp`: MCP Streamable HTTP on the daemon's port, for clients that speak HTTP themselves
 * (SPEC §7). One StreamableHTTPServerTransport and one MCP server (createMcpServer, ceiling
 * "daemon") per session; the session id is the admission session.
 *
 * Security:
 * - On TCP the Host header must name this daemon (localhost / 127.0.0.1 / [::1] / EXAI_WS_HOST,
 *   with the port) — a DNS-rebinding page reaching 127.0.0.1 sends its own host name and gets 403.
 * - On TCP every request needs `Authorization: Bearer <token>` (EXAI_WS_TOKEN, else the generated
 *   EXAI_DATA_DIR/daemon.token; none with EXAI_WS_TOKEN=off). A missing or wrong token gets 403
 *   with a JSON-RPC error whose message says "token required" and how to get it — not 401 +
 *   `WWW-Authenticate: Bearer`, which makes MCP clients start an OAuth flow (Dynamic Client
 *   Registration) that fails without ever telling the user a token is needed. Requests on the
 *   owner-only Unix socket need no token.
 * - A session is bound to the credentials that created it (a hash of its token, or "the socket"):
 *   every later request of the session, DELETE included, must present the same ones, else 404 as
 *   for an unknown session — a leaked mcp-session-id alone cannot use or end it.
 * - At most `maxSessions` sessions are open; opening one more closes the least recently used idle
 *   one (counted by `onEviction`).
 * - When the client closes a POST before its answer (the HTTP request is aborted), the calls of
 *   that POST are cancelled down to the provider request.
 * JSON responses are never enabled: they would drop progress notifications.
 */
import { createHash, randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { isInitializeRequest } from "@modelcontextprotocol/sdk/types.js";
import type { Server } from "@modelcontextprotocol/sdk/server/index.js";
import type { Logger } from "../base/logging.js";
import type { Executor } from "../runtime/executor.js";
import type { Runtime } from "../runtime/runtime.js";
import { createMcpServer } from "../mcp/server.js";
import { tokensEqual } from "../mcp/frames.js";

export interface McpHttpOptions {
  /** The runtime new sessions are served by (read per session: it changes after a configuration reload). */
  runtime: () => Runtime;
  /** The (instrumented) executor the sessions call. */
  executor: Executor;
  /** The daemon ceiling, ms (EXAI_WS_CALL_TIMEOUT). */
  ceilingMs: number;
  /** The TCP token; undefined = no authentication on TCP (EXAI_WS_TOKEN=off). */
  token?: string;
  /** Most open sessions; one more closes the least recently used (default 256). */
  maxSessions?: number;
  /** Called for each session closed to stay within maxSessions. */
  onEviction?: () => void;
  /** `host:port` values the Host header may take (lower case). Read per request (the port is known after listen). */
  allowedHosts: () => ReadonlySet<string>;
  logger: Logger;
  /** Largest request body, bytes. */
  maxBodyBytes: number;
  /** A session with no request for this long is closed, ms (default 30 min). */
  sessionIdleMs?: number;
}

export interface McpHttpEndpoint {
  /**
   * Handles one request to /mcp (any method). `trusted`: it came over the owner-only Unix socket
   * (no Host / token checks). Never throws.
   */
  handle(request: IncomingMessage, response: ServerResponse, trusted?: boolean): Promise<void>;
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
  /** sha256 of the credentials that created it ("socket" for the Unix socket). */
  credential: string;
}

/** What a client without the token is told (a 403 JSON-RPC error; see the module comment). */
export const TOKEN_REQUIRED_MESSAGE =
  "token required: send the header 'Authorization: Bearer <token>'; print it with: exai config --client claude --transport http";

/** The token of an `Authorization: Bearer <token>` header, or undefined. */
export function bearerToken(request: IncomingMessage): string | undefined {
  const header = request.headers.authorization ?? "";
  const match = /^Bearer\s+(.+)$/i.exec(header.trim());
  return match?.[1];
}

/** Answers 403 "token required" as a JSON-RPC error (what MCP HTTP clients show to the user). */
export function sendTokenRequired(response: ServerResponse): void {
  sendError(response, 403, -32001, TOKEN_REQUIRED_MESSAGE);
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

/** A POST body as JSON; on failure the error was sent (413 too large, 400 not JSON). */
async function readJsonBody(
  request: IncomingMessage,
  response: ServerResponse,
  maxBytes: number,
): Promise<{ ok: true; body: unknown } | { ok: false }> {
  const raw = await readBody(request, maxBytes);
  if (raw === undefined) {
    sendError(response, 413, -32600, `request body larger than ${maxBytes} bytes`);
    return { ok: false };
  }
  try {
    return { ok: true, body: JSON.parse(raw.toString("utf8")) };
  } catch {
    // Reported to the client as a JSON-RPC parse error; nothing to log.
    sendError(response, 400, -32700, "Parse error: the body is not valid JSON");
    return { ok: false };
  }
}

/** Cancels the JSON-RPC requests of `body` in `session`, as a notifications/cancelled would. */
function cancelRequestsOf(session: Session, body: unknown, logger: Logger): void {
  if (session.closing) return;
  const messages = Array.isArray(body) ? (body as unknown[]) : [body];
  for (const message of messages) {
    const { id, method } = (message ?? {}) as { id?: unknown; method?: unknown };
    if ((typeof id !== "string" && typeof id !== "number") || typeof method !== "string") continue;
    logger.info({ method }, "the client closed its /mcp request before the answer; cancelling it");
    session.transport.onmessage?.({
      jsonrpc: "2.0",
      method: "notifications/cancelled",
      params: { requestId: id, reason: "the client closed the HTTP request" },
    });
  }
}

/**
 * The open /mcp sessions (least → most recently used), closed after `sessionIdleMs` idle and
 * evicted least recently used first past `maxSessions`.
 */
function createSessionTable(options: McpHttpOptions) {
  /** Open sessions; the Map's order is least → most recently used. */
  const sessions = new Map<string, Session>();
  const idleMs = options.sessionIdleMs ?? 30 * 60_000;
  const maxSessions = options.maxSessions ?? 256;

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

  /** Makes room for one more session: closes least recently used ones, idle ones first. */
  const evictForNewSession = () => {
    while (sessions.size >= maxSessions) {
      const ordered = [...sessions.values()];
      const victim = ordered.find((session) => session.active === 0) ?? ordered[0];
      if (!victim) return;
      options.logger.info(
        { open: sessions.size, limit: maxSessions },
        "closing the least recently used /mcp session",
      );
      options.onEviction?.();
      void closeSession(victim);
    }
  };

  const openSession = async (credential: string): Promise<Session> => {
    const id = randomUUID();
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: () => id });
    const server = createMcpServer(options.runtime(), {
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
      credential,
    };
    transport.onclose = () => {
      if (!session.closing) void closeSession(session);
    };
    await server.connect(transport);
    return session;
  };
  return {
    sessions,
    closeSession,
    evictForNewSession,
    openSession,
    async close(): Promise<void> {
      clearInterval(idleSweep);
      await Promise.all([...sessions.values()].map(closeSession));
    },
  };
}

/** The `/mcp` endpoint: MCP Streamable HTTP, one MCP server per session. */
export function createMcpHttpEndpoint(options: McpHttpOptions): McpHttpEndpoint {
  const table = createSessionTable(options);
  const sessions = table.sessions;
  let accepting = true;

  const authorised = (request: IncomingMessage): boolean => {
    if (options.token === undefined) return true;
    const presented = bearerToken(request);
    return presented !== undefined && tokensEqual(options.token, presented);
  };

  /** What a session is bound to: the socket, or a hash of the bearer header (none with the token off). */
  const credentialOf = (request: IncomingMessage, trusted: boolean): string =>
    trusted
      ? "socket"
      : createHash("sha256")
          .update(`tcp\n${bearerToken(request) ?? ""}`)
          .digest("hex");

  const handle = async (
    request: IncomingMessage,
    response: ServerResponse,
    trusted: boolean,
  ): Promise<void> => {
    if (!trusted) {
      const forbidden = hostOrOriginProblem(request, options.allowedHosts());
      if (forbidden !== undefined) {
        sendError(response, 403, -32000, forbidden);
        return;
      }
      if (!authorised(request)) {
        sendTokenRequired(response);
        return;
      }
    }
    const credential = credentialOf(request, trusted);
    const sessionHeader = request.headers["mcp-session-id"];
    const sessionId = Array.isArray(sessionHeader) ? sessionHeader[0] : sessionHeader;
    let body: unknown;
    if (request.method === "POST") {
      const parsed = await readJsonBody(request, response, options.maxBodyBytes);
      if (!parsed.ok) return;
      body = parsed.body;
    }

    let session = sessionId !== undefined ? sessions.get(sessionId) : undefined;
    // Another client's session (other credentials) is answered exactly like an unknown one.
    if (session && !tokensEqual(session.credential, credential)) session = undefined;
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
      table.evictForNewSession();
      session = await table.openSession(credential);
      sessions.set(session.id, session);
    }

    const current = session;
    sessions.delete(current.id); // re-inserted last: the most recently used
    sessions.set(current.id, current);
    current.active++;
    current.lastSeen = performance.now();
    response.once("close", () => {
      current.active--;
      current.lastSeen = performance.now();
      // The client went away before the answer: cancel this POST's requests (down to the provider).
      if (!response.writableFinished) cancelRequestsOf(current, body, options.logger);
    });
    await current.transport.handleRequest(request, response, body);
    // An initialize that failed leaves a transport without a session: drop it.
    if (current.transport.sessionId === undefined) await table.closeSession(current);
  };

  return {
    async handle(request, response, trusted = false) {
      try {
        await handle(request, response, trusted);
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
      await table.close();
    },
  };
}
