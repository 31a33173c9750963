/**
 * The daemon's HTTP routes, on both listeners: `/mcp` (MCP Streamable HTTP, ./http-mcp.ts),
 * `/health` (JSON), `/metrics` (Prometheus text), WebSocket upgrades on `/` and `/ws`, and
 * `POST /debug/drop-connections` with test hooks. Every path over TCP checks the Host header and
 * Origin (loopback or the configured host, with the port) and needs the token for anything but
 * liveness; the owner-only Unix socket (`trusted`) needs neither.
 */
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import type { WebSocketServer } from "ws";
import type { Logger } from "../base/logging.js";
import { tokensEqual } from "../mcp/frames.js";
import type { Connections } from "./connection.js";
import type { HealthReport } from "./health.js";
import {
  bearerToken,
  hostOrOriginProblem,
  isAllowedOrigin,
  sendTokenRequired,
  type McpHttpEndpoint,
} from "./http-mcp.js";
import type { DaemonMetrics } from "./metrics.js";

export interface HttpRoutesDeps {
  mcp: Pick<McpHttpEndpoint, "handle">;
  metrics: Pick<DaemonMetrics, "render">;
  health: HealthReport;
  connections: Pick<Connections, "accept" | "terminateAll">;
  /** Parses WebSocket upgrades (noServer, with the frame limit). */
  wss: WebSocketServer;
  /** host:port pairs a Host / Origin header may name. */
  allowedHosts(): ReadonlySet<string>;
  token: string | undefined;
  /** Enables POST /debug/drop-connections. */
  testHooks: boolean;
  draining(): boolean;
  logger: Logger;
}

const sendJson = (response: ServerResponse, status: number, body: unknown) => {
  response.writeHead(status, { "content-type": "application/json" });
  response.end(JSON.stringify(body));
};

/**
 * Builds an HTTP server of the daemon; `trusted` for the one on the owner-only Unix socket.
 * Request failures answer 500 and are logged, never thrown.
 */
export function createHttpRoutes(deps: HttpRoutesDeps): (trusted: boolean) => http.Server {
  const { logger, token } = deps;

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
      const forbidden = hostOrOriginProblem(request, deps.allowedHosts());
      if (forbidden !== undefined) {
        sendJson(response, 403, { error: forbidden });
        return;
      }
    }
    const authorised = trusted || hasToken(request);
    if (path === "/mcp") {
      await deps.mcp.handle(request, response, trusted);
      return;
    }
    if (path === "/health" && request.method === "GET") {
      sendJson(response, 200, authorised ? deps.health.details() : deps.health.liveness());
      return;
    }
    if (path === "/metrics" && request.method === "GET") {
      if (!authorised) {
        sendTokenRequired(response);
        return;
      }
      const rendered = await deps.metrics.render();
      response.writeHead(200, { "content-type": rendered.contentType });
      response.end(rendered.body);
      return;
    }
    if (path === "/debug/drop-connections" && request.method === "POST" && deps.testHooks && authorised) {
      const dropped = deps.connections.terminateAll();
      logger.warn({ dropped }, "test hook: dropped every WebSocket connection");
      sendJson(response, 200, { dropped });
      return;
    }
    sendJson(response, 404, {
      error: `not found: ${request.method} ${path}; try /health, /metrics, /mcp or ws://`,
    });
  };

  return (trusted) => {
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
      if (deps.draining()) return reject("503 Service Unavailable");
      if (path !== "/" && path !== "/ws") return reject("404 Not Found");
      // Browsers send Origin on WebSocket handshakes (the shim does not): a web page must not reach the daemon.
      if (!trusted && !isAllowedOrigin(request.headers.origin, deps.allowedHosts()))
        return reject("403 Forbidden");
      deps.wss.handleUpgrade(request, socket, head, (ws) =>
        deps.connections.accept(ws, { trusted, rawSocket: request.socket }),
      );
    });
    return server;
  };
}
