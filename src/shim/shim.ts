/**
 * `exai shim` (SPEC §7): a stdio MCP server that forwards every tool call to the shared daemon over
 * WebSocket, so many MCP clients share one daemon (one set of admission caps, one coalescer, one
 * result cache).
 *
 * - Reaches the daemon only through its Unix socket `EXAI_DATA_DIR/daemon.sock` — never over TCP,
 *   where any local process could have taken the port. Before every connection it verifies that
 *   EXAI_DATA_DIR belongs to its own uid and is closed to group/other and that the socket belongs
 *   to its uid (../mcp/trust.ts); when that fails it sends nothing (no prompt, roots or
 *   session secret) and every call fails with CONFIG_INVALID "the daemon could not be verified".
 *   No token is needed on the socket: only the owner's uid can enter the directory.
 * - Resumes its session after a reconnect with the `resume_secret` of its hello_ack.
 * - Starts a daemon with a minimal environment (HOME, PATH, locale, XDG_CONFIG_HOME,
 *   EXAI_ENV_FILE, EXAI_DATA_DIR, NODE_*), not its own provider keys: the daemon takes its
 *   configuration from the user's configuration file. The hello reports that file (and its sha256)
 *   so a daemon with another one re-reads its configuration; when the provider settings still
 *   differ, the shim's error results say which variables differ and where the daemon's
 *   configuration comes from.
 * - stdin messages above EXAI_MAX_MESSAGE_MB get a JSON-RPC error (or a clear exit ≠ 0).
 *
 * - Connects with backoff (0.25 s doubling to 2 s, 10 s in all); when nothing listens, starts
 *   `exai daemon` detached and keeps trying.
 * - tools/call → call_tool with a fresh request_id, the trace_id from `_meta` (or a new one),
 *   deadline_ms = what is left of the shim's own budget (EXAI_SHIM_RPC_TIMEOUT) minus a transit
 *   margin, and `roots` = the file sandbox of this client: the shim's EXAI_ALLOWED_ROOTS when set,
 *   else the MCP client's roots (when it offers them; refreshed on roots/list_changed), else the
 *   shim's cwd — so files are judged against the client's project, not the daemon's cwd. Daemon progress
 *   frames become `notifications/progress` (the Python shim dropped them); MCP cancellation becomes
 *   `{op:"cancel"}`; OVER_CAPACITY is retried with jitter (at least retry_after) up to 3 times
 *   inside the deadline.
 * - A dropped connection is re-established and the in-flight calls are re-sent with the SAME
 *   request_id: the daemon attaches or answers from its result cache, so nothing runs twice. When
 *   the reconnect is refused (nothing listens: the daemon died) the in-flight calls end at once
 *   with an error that says so; the next call starts a new daemon.
 * - A call the daemon rejects as a frame (`{op:"error", request_id}`, e.g. BAD_FRAME), one too big
 *   for the daemon's frame limit (checked before sending; close 1009) fails at once with
 *   INVALID_ARGUMENT — never re-sent.
 * - The shim's ceiling only fires when the daemon never answers (frozen, overloaded).
 *
 * stdout carries only MCP; logs go to stderr.
 *
 * Files: ./link.ts (the daemon link: ./link-open.ts one attempt, ./link-sockets.ts per-socket
 * calls), ./spawn.ts (starting the daemon), ./mcp-server.ts (the MCP side), ./exchange.ts (one
 * call_tool exchange), ./roots.ts (the file sandbox of each call).
 */
import type { Config } from "../config/load.js";
import { createLogger } from "../base/logging.js";
import { BoundedStdioServerTransport, oversizeMessage } from "../mcp/stdio-transport.js";
import { createShimServer, type ShimOptions } from "./mcp-server.js";

export { createShimServer, type ShimOptions, type ShimServer } from "./mcp-server.js";
export { transitMarginMs } from "./exchange.js";
export { daemonEnvironment } from "./spawn.js";

/** Runs the shim on stdin/stdout until the client disconnects, then exits. */
export async function runShim(config: Config, options: ShimOptions = {}): Promise<void> {
  const logger = options.logger ?? createLogger({ level: config.logLevel, base: { mode: "shim" } });
  const shim = createShimServer(config, { ...options, logger });
  const transport = new BoundedStdioServerTransport({
    maxMessageBytes: config.limits.messageBytes,
    onOversize: (event) => {
      if (!event.answered) return; // reported by stop() as the reason to exit
      logger.warn(
        { bytes: event.bytes, limit_bytes: event.limitBytes, id: event.id, notification: event.notification },
        `rejected a stdin message: ${oversizeMessage(event.bytes, event.limitBytes)}`,
      );
    },
  });
  let stopping = false;
  const stop = async (reason: string) => {
    if (stopping) return;
    stopping = true;
    const failure = transport.failure;
    if (failure) logger.error({ code: failure.code, ...failure.details }, `exai shim: ${failure.message}`);
    else logger.info({ reason }, "exai shim stopping");
    await shim.close();
    process.exit(failure ? 1 : 0);
  };
  shim.server.onclose = () => void stop(transport.failure ? "unanswerable message" : "client disconnected");
  process.stdin.once("end", () => void stop("stdin closed"));
  process.once("SIGTERM", () => void stop("SIGTERM"));
  process.once("SIGINT", () => void stop("SIGINT"));
  await shim.server.connect(transport);
  logger.info({ daemon: shim.link.url }, "exai shim ready");
}
