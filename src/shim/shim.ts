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
 */
import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { isAbsolute } from "node:path";
import { fileURLToPath } from "node:url";
import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import {
  CallToolRequestSchema,
  ListToolsRequestSchema,
  RootsListChangedNotificationSchema,
  type CallToolResult,
  type Tool,
} from "@modelcontextprotocol/sdk/types.js";
import WebSocket, { type RawData } from "ws";
import type { Config } from "../config/load.js";
import {
  CLOSE_CODES,
  configOrigin,
  fingerprintDifferences,
  parseServerFrame,
  providerFingerprintOf,
  type CallToolFrame,
  type CallToolResFrame,
  type ErrorFrame,
  type ProgressFrame,
  type ServerFrame,
} from "../mcp/frames.js";
import { socketPath as socketPathIn, verifyDaemonSocket } from "../mcp/trust.js";
import { ExaiError, formatSeconds, toExaiError } from "../base/errors.js";
import { createLogger, type Logger } from "../base/logging.js";
import { abortReason, now, raceSignal, sleep, startDeadline } from "../timing/deadline.js";
import { SERVER_INSTRUCTIONS, traceIdFromMeta } from "../mcp/server.js";
import { BoundedStdioServerTransport, oversizeMessage } from "../mcp/stdio-transport.js";
import { SERVER_NAME, VERSION } from "../base/version.js";

/** First reconnect backoff, ms; doubles up to CONNECT_MAX_DELAY_MS. */
const CONNECT_FIRST_DELAY_MS = 250;
const CONNECT_MAX_DELAY_MS = 2000;
/** Backoff cap while a daemon this shim started is booting, ms. */
const SPAWNED_MAX_DELAY_MS = 500;
/** One connection attempt (TCP + WebSocket handshake + hello_ack), ms. */
const ATTEMPT_TIMEOUT_MS = 2000;
/** How long the shim waits for its MCP client to list its roots, ms. */
const ROOTS_TIMEOUT_MS = 2000;

/**
 * Kept off the deadline sent to the daemon so its answer arrives before the shim's ceiling, ms:
 * max(250 ms, 2 % of the budget) — 100 ms proved too tight for stdio + WebSocket transit under load.
 */
export function transitMarginMs(budgetMs: number): number {
  return Math.max(250, budgetMs * 0.02);
}
/** OVER_CAPACITY backoff floor before retry n: 250 ms · 2^(n−1). */
const OVER_CAPACITY_BASE_MS = 250;

export interface ShimOptions {
  /** dist/cli.js, used to start the daemon (default: next to this module). */
  cliPath?: string;
  /**
   * The environment a started daemon's is derived from (the CLI passes its own): only HOME, PATH,
   * locale, XDG_CONFIG_HOME, EXAI_ENV_FILE and NODE_* variables are passed on (`daemonEnvironment`).
   */
  daemonEnv?: NodeJS.ProcessEnv;
  logger?: Logger;
  /** How long to keep trying to reach / start the daemon, ms (default 10,000). */
  connectWindowMs?: number;
  /** Source of randomness in [0, 1) for jitter (tests). */
  random?: () => number;
}

/** Variables of the shim's environment a daemon it starts inherits (besides the NODE_* ones). */
const DAEMON_ENV_KEEP = new Set([
  "HOME",
  "PATH",
  "USER",
  "LOGNAME",
  "SHELL",
  "TMPDIR",
  "TZ",
  "LANG",
  "LANGUAGE",
  "XDG_CONFIG_HOME",
  "EXAI_ENV_FILE",
  "SYSTEMROOT",
]);

/**
 * The environment of a daemon the shim starts: HOME, PATH, locale (LANG, LANGUAGE, LC_*),
 * XDG_CONFIG_HOME, EXAI_ENV_FILE, NODE_* and a few process basics from `source`, plus
 * EXAI_DATA_DIR (this shim's, resolved) and EXAI_ENV_FILE = the configuration file this shim read,
 * so the daemon reads the same one. Provider keys and every other exai variable are left out: the
 * daemon takes its configuration from the file, not from whichever shim started it.
 */
export function daemonEnvironment(source: NodeJS.ProcessEnv, config: Config): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(source)) {
    if (value === undefined) continue;
    if (DAEMON_ENV_KEEP.has(name) || name.startsWith("LC_") || name.startsWith("NODE_")) env[name] = value;
  }
  env.EXAI_DATA_DIR = config.dataDir;
  const file = configOrigin(config).file;
  if (file !== undefined) env.EXAI_ENV_FILE = file;
  return env;
}

/** Why a connection attempt failed. */
class LinkFailure extends Error {
  constructor(
    readonly kind: "refused" | "auth" | "failed" | "unverified",
    message: string,
  ) {
    super(message);
  }
}

/** The WebSocket link to the daemon: one greeted socket shared by every call of this shim. */
interface DaemonLink {
  readonly url: string;
  /**
   * Resolves with an open, greeted socket. Retries with backoff within the connect window and the
   * caller's deadline. When nothing listens it starts the daemon if `spawn`, else it fails at once
   * with `DaemonGone` (the daemon that served the caller's call has died).
   * @throws ExaiError (CONFIG_INVALID on a refused token; the signal's reason; unreachable) or DaemonGone.
   */
  connect(options: { spawn: boolean; deadlineAt: number; signal: AbortSignal }): Promise<WebSocket>;
  /** The daemon_id of the daemon the current socket is greeted by (undefined when not connected). */
  daemonId(): string | undefined;
  /**
   * The provider variables whose settings differ between this shim and the daemon it last greeted,
   * and where the daemon's configuration comes from (undefined before the first hello_ack).
   */
  configMismatch(): { variables: string[]; daemonFile?: string; searched?: string } | undefined;
  /**
   * Registers the handlers of a request_id sent on `socket` (register it right before sending: a
   * close 1009 blames the first call, in send order, that the daemon had not answered yet).
   * Watchers belong to their socket: whichever socket closes, its own calls hear about it, even when
   * another socket has replaced it as the current one. Returns the unregister function.
   */
  watch(socket: WebSocket, requestId: string, handlers: CallWatcher): () => void;
  /** Asks the daemon for its tools on `socket`. Rejects when the socket closes or `signal` aborts. */
  listTools(socket: WebSocket, signal: AbortSignal): Promise<Tool[]>;
  send(socket: WebSocket, frame: Record<string, unknown>): boolean;
  /** Cancels every watched request on the daemon and closes the socket. */
  close(): Promise<void>;
}

class DaemonGone extends Error {}

/** What one in-flight call hears from the socket it was sent on. */
interface CallWatcher {
  /** A frame for its request_id: call_tool_ack, progress, call_tool_res, or an `error` naming it. */
  onFrame(frame: ServerFrame): void;
  /**
   * The socket closed. `tooBig`: the close was 1009 and this call's frame is the one the daemon
   * refused as too large (the first of the socket's calls, in send order, it had not answered).
   */
  onClose(info: { code: number; tooBig: boolean }): void;
}

interface WatchedCall {
  handlers: CallWatcher;
  /** The daemon sent something for it on this socket (so its frame was not the one refused). */
  answered: boolean;
}

/** Watchers and list_tools waiters of one socket. */
interface SocketState {
  calls: Map<string, WatchedCall>;
  listWaiters: Set<{ resolve(tools: Tool[]): void; reject(error: Error): void }>;
}

function rawText(data: RawData): string {
  if (Array.isArray(data)) return Buffer.concat(data).toString("utf8");
  if (data instanceof ArrayBuffer) return Buffer.from(data).toString("utf8");
  return data.toString("utf8");
}

function createDaemonLink(config: Config, options: ShimOptions, logger: Logger): DaemonLink {
  const socketFile = socketPathIn(config.dataDir);
  /** How the daemon is named in messages. */
  const url = `unix:${socketFile}`;
  const wsUrl = `ws+unix://${socketFile}:/`;
  const windowMs = options.connectWindowMs ?? 10_000;
  const maxFrameBytes = config.limits.messageBytes;
  const cliPath = options.cliPath ?? fileURLToPath(new URL("../cli.js", import.meta.url));
  const ourFingerprint = providerFingerprintOf(config);
  const ourOrigin = configOrigin(config);
  let current: WebSocket | undefined;
  let attempt: Promise<WebSocket> | undefined;
  let sessionId: string | undefined;
  let resumeSecret: string | undefined;
  let daemonId: string | undefined;
  let mismatch: { variables: string[]; daemonFile?: string; searched?: string } | undefined;
  let lastSpawnAt = Number.NEGATIVE_INFINITY;
  const sockets = new Map<WebSocket, SocketState>();
  const stateOf = (socket: WebSocket): SocketState => {
    let state = sockets.get(socket);
    if (!state) {
      state = { calls: new Map(), listWaiters: new Set() };
      // A socket that already closed had its onClosed: nothing would ever clear state kept for it.
      if (socket.readyState !== WebSocket.CLOSED) sockets.set(socket, state);
    }
    return state;
  };

  /** Starts `exai daemon` detached, at most once per connect window. Returns true when it did. */
  const spawnDaemon = (): boolean => {
    if (now() - lastSpawnAt < windowMs) return false;
    lastSpawnAt = now();
    logger.info({ url, cli: cliPath }, "no daemon answers; starting `exai daemon`");
    try {
      const child = spawn(process.execPath, [cliPath, "daemon"], {
        // The shim's cwd (the client's project): the daemon's cwd is the sandbox of /mcp clients without roots.
        cwd: config.cwd,
        detached: true,
        stdio: "ignore",
        env: daemonEnvironment(options.daemonEnv ?? {}, config),
      });
      child.on("error", (error) => logger.warn({ err: error }, "could not start the daemon"));
      child.unref();
    } catch (error) {
      logger.warn({ err: error }, "could not start the daemon");
    }
    return true;
  };

  const toCall = (socket: WebSocket, requestId: string, frame: ServerFrame) => {
    const call = sockets.get(socket)?.calls.get(requestId);
    if (!call) return false;
    call.answered = true;
    call.handlers.onFrame(frame);
    return true;
  };

  const dispatch = (socket: WebSocket, frame: ServerFrame) => {
    switch (frame.op) {
      case "call_tool_ack":
      case "progress":
      case "call_tool_res":
        toCall(socket, frame.request_id, frame);
        return;
      case "list_tools_res": {
        const waiters = sockets.get(socket)?.listWaiters;
        for (const waiter of waiters ?? []) waiter.resolve(frame.tools as Tool[]);
        waiters?.clear();
        return;
      }
      case "error":
        if (frame.request_id !== undefined && toCall(socket, frame.request_id, frame)) return;
        logger.warn({ code: frame.code, message: frame.message }, "the daemon reported a protocol error");
        return;
      default:
        return;
    }
  };

  const onClosed = (socket: WebSocket, code: number) => {
    if (current === socket) current = undefined;
    const state = sockets.get(socket);
    sockets.delete(socket);
    if (!state) return;
    logger.info({ code, calls: state.calls.size }, "connection to the daemon closed");
    for (const waiter of state.listWaiters) waiter.reject(new Error("the connection to the daemon closed"));
    state.listWaiters.clear();
    // 1009: the daemon refused a frame as too large. Frames are handled in order and each call_tool
    // is answered at once (ack, or error), so the culprit is the first call it had not answered.
    const culprit =
      code === CLOSE_CODES.TOO_BIG ? [...state.calls.values()].find((call) => !call.answered) : undefined;
    for (const call of [...state.calls.values()]) call.handlers.onClose({ code, tooBig: call === culprit });
    state.calls.clear();
  };

  /** One attempt: verify the socket, connect, hello, hello_ack. */
  const openOnce = (timeoutMs: number): Promise<WebSocket> =>
    new Promise<WebSocket>((resolve, reject) => {
      // Nothing is sent to a socket that cannot be proven to be this user's own daemon.
      const check = verifyDaemonSocket(config.dataDir);
      if (check.kind === "missing") {
        reject(new LinkFailure("refused", `no daemon socket at ${check.path}`));
        return;
      }
      if (check.kind === "unverified") {
        reject(new LinkFailure("unverified", check.reason));
        return;
      }
      const socket = new WebSocket(wsUrl, {
        handshakeTimeout: timeoutMs,
        maxPayload: maxFrameBytes,
        perMessageDeflate: false,
      });
      let greeted = false;
      let settled = false;
      const fail = (failure: LinkFailure) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        socket.terminate();
        reject(failure);
      };
      const timer = setTimeout(
        () => fail(new LinkFailure("failed", `no hello_ack within ${timeoutMs} ms`)),
        timeoutMs,
      );
      timer.unref();
      socket.on("open", () => {
        socket.send(
          JSON.stringify({
            op: "hello",
            ...(sessionId !== undefined && resumeSecret !== undefined
              ? { session_id: sessionId, resume_secret: resumeSecret }
              : {}),
            client: { name: "exai-shim", version: VERSION },
            config: {
              ...(ourOrigin.file !== undefined ? { env_file: ourOrigin.file } : {}),
              ...(ourOrigin.fileSha256 !== undefined ? { env_sha256: ourOrigin.fileSha256 } : {}),
              provider_fingerprint: ourFingerprint,
            },
          }),
        );
      });
      socket.on("message", (data: RawData) => {
        const parsed = parseServerFrame(rawText(data));
        if (!parsed.ok) {
          logger.warn({ code: parsed.code, message: parsed.message }, "invalid frame from the daemon");
          return;
        }
        if (greeted) {
          dispatch(socket, parsed.frame);
          return;
        }
        if (parsed.frame.op !== "hello_ack") {
          fail(new LinkFailure("failed", `expected hello_ack, got ${parsed.frame.op}`));
          return;
        }
        greeted = true;
        settled = true;
        clearTimeout(timer);
        sessionId = parsed.frame.session_id;
        resumeSecret = parsed.frame.resume_secret;
        daemonId = parsed.frame.daemon_id;
        const theirs = parsed.frame.config;
        const variables =
          theirs?.provider_fingerprint !== undefined
            ? fingerprintDifferences(ourFingerprint, theirs.provider_fingerprint)
            : [];
        mismatch = {
          variables,
          ...(theirs?.env_file !== undefined ? { daemonFile: theirs.env_file } : {}),
          ...(theirs?.searched !== undefined ? { searched: theirs.searched } : {}),
        };
        if (variables.length > 0)
          logger.warn(
            { variables, daemon_config: theirs?.env_file ?? null },
            "the daemon's provider settings differ",
          );
        current = socket;
        stateOf(socket);
        resolve(socket);
      });
      socket.on("error", (error: NodeJS.ErrnoException) => {
        fail(
          new LinkFailure(
            error.code === "ECONNREFUSED" || error.code === "ENOENT" ? "refused" : "failed",
            error.message || String(error.code),
          ),
        );
      });
      socket.on("close", (code: number, reason: Buffer) => {
        if (code === CLOSE_CODES.UNAUTHORIZED || code === CLOSE_CODES.TOKEN_MISSING) {
          fail(new LinkFailure("auth", `${code} ${reason.toString("utf8")}`));
        } else {
          fail(new LinkFailure("failed", `closed with ${code} ${reason.toString("utf8")}`.trim()));
        }
        onClosed(socket, code);
      });
    });

  const send = (socket: WebSocket, frame: Record<string, unknown>): boolean => {
    if (socket.readyState !== WebSocket.OPEN) return false;
    socket.send(JSON.stringify(frame));
    return true;
  };

  const unreachable = (last: LinkFailure | undefined, started: boolean) =>
    new ExaiError(
      // INTERNAL (retryable), not CANCELLED: agents read CANCELLED as "the user cancelled".
      "INTERNAL",
      `the exai daemon at ${url} is unreachable${last ? ` (${last.message})` : ""}; ${started ? "it was started automatically but " : "it "}did not answer within ${formatSeconds(windowMs / 1000)}. Run \`exai daemon\` in a terminal to see why, or check EXAI_DATA_DIR/logs/exai.log`,
      { retryable: true, details: { layer: "shim", reason: "daemon_unreachable", daemon_url: url } },
    );

  return {
    url,
    async connect({ spawn: mayStart, deadlineAt, signal }) {
      const windowEnd = Math.min(now() + windowMs, deadlineAt);
      let delay = CONNECT_FIRST_DELAY_MS;
      let maxDelay = CONNECT_MAX_DELAY_MS;
      let last: LinkFailure | undefined;
      let started = false;
      for (;;) {
        if (current && current.readyState === WebSocket.OPEN) return current;
        const remaining = windowEnd - now();
        if (remaining <= 0) throw unreachable(last, started);
        try {
          attempt ??= openOnce(Math.min(ATTEMPT_TIMEOUT_MS, remaining)).finally(() => {
            attempt = undefined;
          });
          return await raceSignal(attempt, signal);
        } catch (error) {
          if (signal.aborted) throw abortReason(signal);
          if (!(error instanceof LinkFailure)) throw toExaiError(error, "shim");
          last = error;
          if (error.kind === "unverified") {
            throw new ExaiError(
              "CONFIG_INVALID",
              `the daemon could not be verified: ${error.message}. Nothing was sent to it. EXAI_DATA_DIR (${config.dataDir}) must be a directory owned by you with mode 0700 (chmod 700 ${config.dataDir}), holding a daemon.sock of yours; if it is not yours, set EXAI_DATA_DIR to a directory of your own`,
              { details: { layer: "shim", reason: "daemon_unverified", variables: ["EXAI_DATA_DIR"] } },
            );
          }
          if (error.kind === "auth") {
            throw new ExaiError(
              "CONFIG_INVALID",
              `the daemon at ${url} refused this shim (${error.message}); its socket should need no token — restart the daemon`,
              { details: { layer: "shim", reason: "daemon_refused" } },
            );
          }
          if (error.kind === "refused") {
            if (!mayStart) throw new DaemonGone(error.message);
            if (spawnDaemon()) {
              started = true;
              // A daemon boots in ~0.7 s: poll it briskly instead of backing off to 2 s.
              delay = CONNECT_FIRST_DELAY_MS;
              maxDelay = SPAWNED_MAX_DELAY_MS;
            }
          }
          if (now() + delay >= windowEnd) throw unreachable(last, started);
          logger.debug({ delay_ms: delay, error: error.message }, "daemon not reachable yet; retrying");
          await sleep(delay, signal);
          delay = Math.min(delay * 2, maxDelay);
        }
      }
    },
    daemonId: () => (current ? daemonId : undefined),
    configMismatch: () => mismatch,
    watch(socket, requestId, handlers) {
      const calls = stateOf(socket).calls;
      const call: WatchedCall = { handlers, answered: false };
      calls.delete(requestId); // re-inserted last: the map's order is the send order
      calls.set(requestId, call);
      return () => {
        if (calls.get(requestId) === call) calls.delete(requestId);
      };
    },
    listTools(socket, signal) {
      return new Promise<Tool[]>((resolve, reject) => {
        if (signal.aborted) {
          reject(abortReason(signal));
          return;
        }
        const waiter = {
          resolve(tools: Tool[]) {
            signal.removeEventListener("abort", onAbort);
            resolve(tools);
          },
          reject(error: Error) {
            signal.removeEventListener("abort", onAbort);
            reject(error);
          },
        };
        const listWaiters = stateOf(socket).listWaiters;
        const onAbort = () => {
          listWaiters.delete(waiter);
          reject(abortReason(signal));
        };
        signal.addEventListener("abort", onAbort, { once: true });
        listWaiters.add(waiter);
        if (!send(socket, { op: "list_tools" }))
          waiter.reject(new Error("the connection to the daemon closed"));
      });
    },
    send,
    async close() {
      for (const [open, state] of sockets) {
        for (const requestId of state.calls.keys()) send(open, { op: "cancel", request_id: requestId });
        state.calls.clear();
      }
      const socket = current;
      if (!socket) return;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          socket.terminate();
          resolve();
        }, 300);
        timer.unref();
        socket.once("close", () => {
          clearTimeout(timer);
          resolve();
        });
        socket.close(CLOSE_CODES.NORMAL, "shim closing");
      });
    },
  };
}

/** The error of a call whose frame the daemon rejected (`{op:"error", request_id}`). */
function rejectedFrame(frame: ErrorFrame): ExaiError {
  return new ExaiError(
    "INVALID_ARGUMENT",
    `the daemon rejected this call's frame (${frame.code}): ${frame.message}`,
    { details: { layer: "shim", daemon_code: frame.code } },
  );
}

/** The MCP result for an error payload (same shape as the in-process server's). */
function errorResult(payload: Record<string, unknown>): CallToolResult {
  return {
    content: [{ type: "text", text: JSON.stringify(payload, null, 2) }],
    structuredContent: payload,
    isError: true,
  };
}

function resultFromFrame(frame: CallToolResFrame, traceId: string): CallToolResult {
  if (frame.error) return errorResult({ status: "error", trace_id: traceId, ...frame.error });
  if (!frame.outputs) {
    return errorResult(
      new ExaiError(
        "INTERNAL",
        "the daemon answered without outputs or error; this is a bug, please report it",
      ).toPayload(traceId),
    );
  }
  return {
    content: frame.outputs.content as CallToolResult["content"],
    ...(frame.outputs.structuredContent ? { structuredContent: frame.outputs.structuredContent } : {}),
  };
}

/** Where one call_tool exchange stands (for re-sends and for error messages). */
interface Phase {
  /** The daemon acknowledged the call. */
  acked: boolean;
  /** The frame was sent at least once (a reconnect must not start a new daemon for it). */
  sent: boolean;
  /** daemon_id of the daemon it was sent to. */
  daemonId?: string;
}

export interface ShimServer {
  server: Server;
  link: DaemonLink;
  close(): Promise<void>;
}

/** Builds the shim's MCP server (not yet connected to a transport). */
export function createShimServer(config: Config, options: ShimOptions = {}): ShimServer {
  const logger = options.logger ?? createLogger({ level: config.logLevel, base: { mode: "shim" } });
  const link = createDaemonLink(config, options, logger);
  const random = options.random ?? Math.random;
  const budgetMs = config.timeouts.shimMs;
  const budgetText = formatSeconds(budgetMs / 1000);
  const marginMs = transitMarginMs(budgetMs);
  const healthUrl = `\`curl --unix-socket ${socketPathIn(config.dataDir)} http://localhost/health\``;
  const maxFrameBytes = config.limits.messageBytes;

  /**
   * The sentence appended to error results while this shim's provider settings differ from the
   * daemon's: which variables, and where the daemon's configuration comes from.
   */
  const configNote = (): string | undefined => {
    const mismatch = link.configMismatch();
    if (!mismatch || mismatch.variables.length === 0) return undefined;
    const where =
      mismatch.daemonFile !== undefined
        ? `from ${mismatch.daemonFile}`
        : `from its own environment (no configuration file${mismatch.searched !== undefined ? `; it looked for ${mismatch.searched}` : ""})`;
    return `Note: this client's environment sets ${mismatch.variables.join(", ")} differently from the shared daemon, which uses its configuration ${where} and ignores the client's provider variables; put the provider settings in that file (the daemon re-reads it on SIGHUP or when a shim reports a changed file).`;
  };
  const withNote = (result: CallToolResult): CallToolResult => {
    const note = configNote();
    if (!result.isError || note === undefined) return result;
    const payload = { ...(result.structuredContent ?? {}) } as Record<string, unknown>;
    payload.message = `${typeof payload.message === "string" ? payload.message : ""} ${note}`.trim();
    return errorResult(payload);
  };
  let tools: Tool[] | undefined;

  const server = new Server(
    { name: SERVER_NAME, version: VERSION },
    { capabilities: { tools: { listChanged: false } }, instructions: SERVER_INSTRUCTIONS },
  );

  // The client's roots (as src/mcp/server.ts does): listed once, again after roots/list_changed.
  let clientRoots: string[] | undefined;
  let rootsLoaded: Promise<void> | undefined;
  const loadRoots = (): Promise<void> => {
    rootsLoaded ??= (async () => {
      let listed: string[] | undefined;
      if (server.getClientCapabilities()?.roots) {
        try {
          const result = await server.listRoots(undefined, { timeout: ROOTS_TIMEOUT_MS });
          listed = result.roots.flatMap((root) => {
            if (!root.uri.startsWith("file://")) return [];
            try {
              const path = fileURLToPath(root.uri);
              return isAbsolute(path) ? [path] : [];
            } catch {
              return []; // a file URL this platform cannot map to a path (e.g. a remote host)
            }
          });
        } catch (error) {
          // A client that advertises roots but fails to list them: fall back to the shim's cwd.
          logger.warn({ err: error }, "could not list the client's roots; using the shim's cwd");
        }
      }
      clientRoots = listed;
    })();
    return rootsLoaded;
  };
  server.setNotificationHandler(RootsListChangedNotificationSchema, async () => {
    rootsLoaded = undefined;
    await loadRoots();
  });
  /** The file sandbox sent with each call: EXAI_ALLOWED_ROOTS of the shim, the client's roots, or its cwd. */
  const rootsForCall = async (signal: AbortSignal): Promise<string[]> => {
    if (config.allowedRoots && config.allowedRoots.length > 0) return config.allowedRoots;
    await raceSignal(loadRoots(), signal);
    return clientRoots && clientRoots.length > 0 ? clientRoots : [config.cwd];
  };

  server.setRequestHandler(ListToolsRequestSchema, async (_request, extra) => {
    if (tools) return { tools };
    const deadline = startDeadline(budgetMs, "shim", extra.signal);
    try {
      for (let attempt = 1; ; attempt++) {
        const socket = await link.connect({ spawn: true, deadlineAt: deadline.at, signal: deadline.signal });
        try {
          tools = await link.listTools(socket, deadline.signal);
          return { tools };
        } catch (error) {
          if (deadline.signal.aborted || attempt >= 3) throw error;
        }
      }
    } catch (error) {
      const failure = toExaiError(error, "shim");
      throw new Error(`exai shim: could not list the daemon's tools: ${failure.code}: ${failure.message}`);
    } finally {
      deadline.dispose();
    }
  });

  /**
   * One call_tool exchange under one request_id, re-sent after reconnects until the daemon answers.
   * @throws ExaiError (the deadline's TIMEOUT, CANCELLED, unreachable) or DaemonGone.
   */
  const exchange = async (
    frame: Omit<CallToolFrame, "deadline_ms" | "arguments"> & { arguments: Record<string, unknown> },
    deadline: ReturnType<typeof startDeadline>,
    onProgress: ((frame: ProgressFrame) => void) | undefined,
    phase: Phase,
  ): Promise<CallToolResFrame> => {
    const signal = deadline.signal;
    // deadline_ms only shrinks, so this is the largest the frame will ever be.
    const largest = Buffer.byteLength(JSON.stringify({ ...frame, deadline_ms: Math.floor(budgetMs) }));
    if (largest > maxFrameBytes) {
      throw new ExaiError(
        "INVALID_ARGUMENT",
        `arguments too large for the daemon's ${maxFrameBytes / 1024 / 1024} MiB frame limit (${(largest / 1024 / 1024).toFixed(1)} MiB); pass files by path instead of their contents`,
        {
          details: { layer: "shim", field: "arguments", frame_bytes: largest, limit_bytes: maxFrameBytes },
        },
      );
    }
    for (;;) {
      const socket = await link.connect({ spawn: !phase.sent, deadlineAt: deadline.at, signal });
      if (phase.sent && phase.daemonId !== undefined && link.daemonId() !== phase.daemonId) {
        // Another daemon answers now: the one running this call is gone, and re-sending would run it twice.
        throw new DaemonGone("a different daemon answered the reconnect");
      }
      const answer = await new Promise<CallToolResFrame | "closed">((resolve, reject) => {
        const finish = () => {
          unwatch();
          signal.removeEventListener("abort", onAbort);
        };
        const onAbort = () => {
          finish();
          // Best effort: the daemon stops the call (down to the provider request).
          link.send(socket, { op: "cancel", request_id: frame.request_id });
          reject(abortReason(signal));
        };
        const unwatch = link.watch(socket, frame.request_id, {
          onFrame(incoming) {
            if (incoming.op === "call_tool_ack") phase.acked = true;
            else if (incoming.op === "progress") onProgress?.(incoming);
            else if (incoming.op === "call_tool_res") {
              finish();
              resolve(incoming);
            } else if (incoming.op === "error") {
              // The daemon rejected this call's frame: re-sending it would only be rejected again.
              finish();
              reject(rejectedFrame(incoming));
            }
          },
          onClose({ tooBig }) {
            finish();
            if (tooBig) {
              // Final for this call: re-sending the same frame would close the next connection too.
              reject(
                new ExaiError(
                  "INVALID_ARGUMENT",
                  `the daemon closed the connection (1009, frame too large) on this call's frame: its arguments exceed the daemon's frame limit; pass files by path instead of their contents`,
                  { details: { layer: "shim", field: "arguments", close_code: CLOSE_CODES.TOO_BIG } },
                ),
              );
            } else resolve("closed");
          },
        });
        signal.addEventListener("abort", onAbort, { once: true });
        const sent = link.send(socket, {
          ...frame,
          deadline_ms: Math.max(0, Math.floor(deadline.remainingMs() - marginMs)),
        });
        if (!sent) {
          finish();
          resolve("closed");
          return;
        }
        phase.sent = true;
        phase.daemonId = link.daemonId();
      });
      if (answer !== "closed") return answer;
      if (signal.aborted) throw abortReason(signal);
      logger.info({ request_id: frame.request_id }, "connection lost mid-call; reconnecting to re-attach");
    }
  };

  server.setRequestHandler(CallToolRequestSchema, async (request, extra): Promise<CallToolResult> => {
    const started = now();
    const meta = request.params._meta as Record<string, unknown> | undefined;
    const traceId = traceIdFromMeta(meta) ?? randomUUID().replace(/-/g, "");
    const progressToken = meta?.progressToken as string | number | undefined;
    const deadline = startDeadline(budgetMs, "shim", extra.signal);
    let lastProgress = 0;
    const onProgress =
      progressToken === undefined
        ? undefined
        : (frame: ProgressFrame) => {
            // Elapsed ms on the shim's monotonic clock: strictly increasing even across re-sends.
            lastProgress = Math.max(lastProgress + 1, Math.round(now() - started));
            extra
              .sendNotification({
                method: "notifications/progress",
                params: { progressToken, progress: lastProgress, total: budgetMs, message: frame.message },
              })
              .catch((error: unknown) => logger.debug({ err: error }, "progress notification not delivered"));
          };
    const phase: Phase = { acked: false, sent: false };
    try {
      const roots = await rootsForCall(deadline.signal);
      for (let retry = 0; ; retry++) {
        const requestId = randomUUID();
        phase.acked = false;
        phase.sent = false;
        phase.daemonId = undefined;
        const answer = await exchange(
          {
            op: "call_tool",
            request_id: requestId,
            name: request.params.name,
            arguments: request.params.arguments ?? {},
            trace_id: traceId,
            progress: progressToken !== undefined,
            roots,
          },
          deadline,
          onProgress,
          phase,
        );
        const retryAfterS = answer.error?.retry_after;
        if (answer.error?.code === "OVER_CAPACITY" && retry < config.admission.retries) {
          // At least what the daemon asked for, up to twice that, and a growing floor.
          const floor = OVER_CAPACITY_BASE_MS * 2 ** retry;
          const delay = Math.max((retryAfterS ?? 0.5) * 1000, floor) * (1 + random());
          if (delay < deadline.remainingMs() - marginMs) {
            logger.debug(
              { trace_id: traceId, retry: retry + 1, delay_ms: Math.round(delay) },
              "OVER_CAPACITY; retrying",
            );
            await sleep(delay, deadline.signal);
            continue;
          }
        }
        return withNote(resultFromFrame(answer, traceId));
      }
    } catch (error) {
      return withNote(errorResult(describeFailure(error, phase, traceId).toPayload(traceId)));
    } finally {
      deadline.dispose();
    }
  });

  const describeFailure = (error: unknown, phase: Phase, traceId: string): ExaiError => {
    if (error instanceof DaemonGone) {
      logger.warn({ trace_id: traceId }, "the daemon went away during a call");
      // INTERNAL (retryable), not CANCELLED: agents read CANCELLED as "the user cancelled".
      return new ExaiError(
        "INTERNAL",
        `the exai daemon at ${link.url} went away during the call (reconnect refused: ${error.message}); the call did not complete and its result is lost. Retry it: the next call starts a new daemon automatically (or run \`exai daemon\`; inspect ${healthUrl} and EXAI_DATA_DIR/logs/exai.log)`,
        { retryable: true, details: { layer: "shim", reason: "daemon_gone", daemon_url: link.url } },
      );
    }
    const failure = toExaiError(error, "shim");
    if (failure.code === "TIMEOUT" && failure.details.layer === "shim") {
      const message = phase.sent
        ? `the daemon did not answer within the shim ceiling of ${budgetText} (EXAI_SHIM_RPC_TIMEOUT)${phase.acked ? " although it accepted the call" : ""}; it may be frozen (stopped) or overloaded. Check ${healthUrl} and EXAI_DATA_DIR/logs/exai.log, or stop the daemon process: the next call starts a new one`
        : `could not reach the exai daemon at ${link.url} within the shim ceiling of ${budgetText} (EXAI_SHIM_RPC_TIMEOUT); it may be frozen (stopped) or overloaded. Check ${healthUrl}, or stop the daemon process: the next call starts a new one`;
      logger.warn({ trace_id: traceId, acked: phase.acked }, "shim ceiling reached");
      return new ExaiError("TIMEOUT", message, {
        retryable: true,
        details: { layer: "shim", budget_s: budgetMs / 1000, daemon_url: link.url },
      });
    }
    return failure;
  };

  return {
    server,
    link,
    async close() {
      await link.close();
      await server.close().catch(() => undefined); // already closed by the peer: nothing to do
    },
  };
}

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
