/**
 * The daemon's listeners and shutdown: listening on the owner-only Unix socket and on TCP, the
 * start-up log line, and the graceful shutdown (drain, deliver, close).
 */
import type http from "node:http";
import type { WebSocketServer } from "ws";
import type { Config } from "../config/load.js";
import { ExaiError } from "../base/errors.js";
import type { Logger } from "../base/logging.js";
import type { Executor } from "../runtime/executor.js";
import { configOrigin } from "../mcp/config-origin.js";
import type { Connections } from "./connection.js";
import type { Generations } from "./generations.js";
import type { McpHttpEndpoint } from "./http-mcp.js";
import type { RequestRegistry } from "./requests.js";

export interface ShutdownParts {
  drainMs: number;
  mcp: McpHttpEndpoint;
  executor: Executor;
  requests: RequestRegistry;
  connections: Connections;
  wss: WebSocketServer;
  /** The TCP server first (it stops accepting at once), then the socket server. */
  servers: [http.Server, http.Server];
  generations: Generations;
  logger: Logger;
}

/**
 * Graceful shutdown (the daemon already refuses new calls): stop accepting on TCP, let calls in
 * flight finish within `drainMs`, deliver their results, close every socket, close the runtimes.
 */
export async function shutDown(parts: ShutdownParts): Promise<void> {
  const { mcp, executor, requests, connections, logger } = parts;
  const [httpServer, socketServer] = parts.servers;
  mcp.stopAccepting();
  const serverClosed = new Promise<void>((resolve) => httpServer.close(() => resolve()));
  logger.info({ inflight: executor.inflight() }, "exai daemon draining");
  await executor.drain(parts.drainMs);
  // Results are sent in promise callbacks queued as the last call settles; let them run first.
  await new Promise<void>((resolve) => setImmediate(resolve));
  requests.close(new ExaiError("CANCELLED", "the daemon shut down before the call finished"));
  const socketClosed = new Promise<void>((resolve) => socketServer.close(() => resolve()));
  connections.closeAll();
  await mcp.close();
  parts.wss.close();
  httpServer.closeAllConnections();
  socketServer.closeAllConnections();
  await Promise.race([
    Promise.all([serverClosed, socketClosed]),
    new Promise<void>((resolve) => setTimeout(resolve, 1000).unref()),
  ]);
  logger.info("exai daemon stopped");
  await parts.generations.close();
}

/** Logs where the daemon listens (and a warning when the TCP token is off); returns its ws:// URL. */
export function announce(facts: {
  host: string;
  boundPort: number;
  socketPath: string;
  token: string | undefined;
  config: Config;
  generations: Generations;
  logger: Logger;
}): string {
  const { host, boundPort, logger } = facts;
  const shownHost = host.includes(":") ? `[${host}]` : host;
  const url = `ws://${shownHost}:${boundPort}/`;
  if (facts.token === undefined) {
    logger.warn(
      "EXAI_WS_TOKEN=off: the TCP endpoints (/mcp, WebSocket, /metrics) accept any local process without a token",
    );
  }
  const current = facts.generations.current();
  logger.info(
    {
      url: boundPort !== 0 ? url : null,
      socket: facts.socketPath,
      tools: current.tools.length,
      providers: current.runtime.registry.configuredProviders(),
      auth: facts.token !== undefined,
      config_file: configOrigin(facts.config).file ?? null,
    },
    "exai daemon listening",
  );
  return url;
}

/**
 * Listens on the owner-only Unix socket.
 * @throws ExaiError CONFIG_INVALID naming EXAI_DATA_DIR when it cannot.
 */
export async function listenOnSocket(server: http.Server, socketPath: string): Promise<void> {
  try {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(socketPath, () => {
        server.off("error", reject);
        resolve();
      });
    });
  } catch (error) {
    throw new ExaiError(
      "CONFIG_INVALID",
      `the daemon could not listen on its socket ${socketPath}: ${(error as Error).message}; check EXAI_DATA_DIR`,
      { cause: error, details: { variables: ["EXAI_DATA_DIR"] } },
    );
  }
}

/**
 * Listens on TCP and resolves with the port bound, or 0 when it cannot (logged: the socket is the
 * shim's way in, so a squatter on the port must not stop the user's daemon). Never rejects.
 */
export async function listenOnTcp(
  server: http.Server,
  host: string,
  port: number,
  logger: Logger,
): Promise<number> {
  try {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, host, () => {
        server.off("error", reject);
        resolve();
      });
    });
    const address = server.address();
    return typeof address === "object" && address !== null ? address.port : 0;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    logger.warn(
      { host, port, code },
      code === "EADDRINUSE"
        ? `TCP port ${port} on ${host} is taken by another process; serving the Unix socket only (set EXAI_WS_PORT to use /mcp over HTTP)`
        : `the daemon could not listen on ${host}:${port} (${(error as Error).message}); serving the Unix socket only (check EXAI_WS_HOST / EXAI_WS_PORT)`,
    );
    return 0;
  }
}
