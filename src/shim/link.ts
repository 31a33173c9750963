/**
 * The shim's link to the shared daemon (SPEC §7): one greeted WebSocket shared by every call of
 * this shim, reached only through the Unix socket `EXAI_DATA_DIR/daemon.sock` after verifying it
 * is the user's own (../mcp/trust.ts). Connects with full-jitter backoff (./backoff.ts: waits up to
 * 0.25 s growing to 2 s, 10 s in all);
 * when nothing listens, starts `exai daemon` detached and keeps trying. Resumes its session after a
 * reconnect with the `resume_secret` of its hello_ack.
 */
import { fileURLToPath } from "node:url";
import type { Tool } from "@modelcontextprotocol/sdk/types.js";
import WebSocket from "ws";
import type { Config } from "../config/load.js";
import { ExaiError, formatSeconds, toExaiError } from "../base/errors.js";
import type { Logger } from "../base/logging.js";
import { VERSION } from "../base/version.js";
import { now, raceSignal } from "../timing/deadline.js";
import { CLOSE_CODES, type HelloAckFrame } from "../mcp/frames.js";
import { configOrigin, fingerprintDifferences, providerFingerprintOf } from "../mcp/config-origin.js";
import { socketPath as socketPathIn, verifyDaemonSocket } from "../mcp/trust.js";
import { LinkFailure, openConnection, type LinkTransport } from "./link-open.js";
import { createSocketTable, type CallWatcher } from "./link-sockets.js";
import { connectWithBackoff, SPAWNED_MAX_DELAY_MS } from "./backoff.js";
import { createDaemonStarter } from "./spawn.js";

export type { CallWatcher } from "./link-sockets.js";
export type { LinkTransport } from "./link-open.js";

/** The daemon that served a call is gone (the reconnect was refused, or another daemon answers). */
export class DaemonGone extends Error {}

export interface LinkOptions {
  /** dist/cli.js, used to start the daemon (default: next to this module). */
  cliPath?: string;
  /** The environment a started daemon's is derived from (see `daemonEnvironment`). */
  daemonEnv?: NodeJS.ProcessEnv;
  /** How long to keep trying to reach / start the daemon, ms (default 10,000). */
  connectWindowMs?: number;
  /** Source of randomness in [0, 1) for the connect backoff's jitter (tests). */
  random?: () => number;
  /** How the daemon is reached (default: its Unix socket, verified first). */
  transport?: LinkTransport;
}

/** What the link learnt from the daemon's hello_ack about its configuration. */
export interface ConfigMismatch {
  /** Provider variables whose settings differ between this shim and the daemon. */
  variables: string[];
  /** The daemon's configuration file. */
  daemonFile?: string;
  /** Where the daemon looked for one when it has none. */
  searched?: string;
}

/** The WebSocket link to the daemon: one greeted socket shared by every call of this shim. */
export interface DaemonLink {
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
  /** The configuration differences of the daemon last greeted (undefined before the first hello_ack). */
  configMismatch(): ConfigMismatch | undefined;
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

/** The default transport: the Unix socket in EXAI_DATA_DIR, verified before each attempt. */
export function unixSocketTransport(config: Config): LinkTransport {
  const wsUrl = `ws+unix://${socketPathIn(config.dataDir)}:/`;
  return {
    verify: () => verifyDaemonSocket(config.dataDir),
    dial: (timeoutMs) =>
      new WebSocket(wsUrl, {
        handshakeTimeout: timeoutMs,
        maxPayload: config.limits.messageBytes,
        perMessageDeflate: false,
      }),
  };
}

/** The link of one shim. */
export function createDaemonLink(config: Config, options: LinkOptions, logger: Logger): DaemonLink {
  /** How the daemon is named in messages. */
  const url = `unix:${socketPathIn(config.dataDir)}`;
  const windowMs = options.connectWindowMs ?? 10_000;
  const transport = options.transport ?? unixSocketTransport(config);
  const spawnDaemon = createDaemonStarter({
    config,
    cliPath: options.cliPath ?? fileURLToPath(new URL("../cli.js", import.meta.url)),
    sourceEnv: options.daemonEnv ?? {},
    windowMs,
    logger,
    url,
  });
  const table = createSocketTable(logger);
  const greeting = createGreeting(config, logger);
  let current: WebSocket | undefined;
  let attempt: Promise<WebSocket> | undefined;
  const onGreeted = (socket: WebSocket, ack: HelloAckFrame) => {
    greeting.acknowledged(ack);
    current = socket;
    table.track(socket);
  };

  const openOnce = (timeoutMs: number) =>
    openConnection({
      transport,
      timeoutMs,
      hello: greeting.hello,
      onGreeted,
      onFrame: (socket, frame) => table.dispatch(socket, frame),
      onClosed: (socket, code) => {
        if (current === socket) current = undefined;
        table.closed(socket, code);
      },
      logger,
    });

  const unreachable = (last: LinkFailure | undefined, started: boolean) =>
    new ExaiError(
      // INTERNAL (retryable), not CANCELLED: agents read CANCELLED as "the user cancelled".
      "INTERNAL",
      `the exai daemon at ${url} is unreachable${last ? ` (${last.message})` : ""}; ${started ? "it was started automatically but " : "it "}did not answer within ${formatSeconds(windowMs / 1000)}. Run \`exai daemon\` in a terminal to see why, or check EXAI_DATA_DIR/logs/exai.log`,
      { retryable: true, details: { layer: "shim", reason: "daemon_unreachable", daemon_url: url } },
    );

  const connect: DaemonLink["connect"] = async ({ spawn: mayStart, deadlineAt, signal }) => {
    const windowEnd = Math.min(now() + windowMs, deadlineAt);
    let last: LinkFailure | undefined;
    let started = false;
    if (current && current.readyState === WebSocket.OPEN) return current;
    if (windowEnd <= now()) throw unreachable(last, started);
    return connectWithBackoff({
      windowEnd,
      signal,
      ...(options.random ? { random: options.random } : {}),
      open: (timeoutMs) => {
        if (current && current.readyState === WebSocket.OPEN) return Promise.resolve(current);
        attempt ??= openOnce(timeoutMs).finally(() => {
          attempt = undefined;
        });
        return raceSignal(attempt, signal);
      },
      classify: (error) => {
        if (!(error instanceof LinkFailure)) throw toExaiError(error, "shim");
        last = error;
        const final = finalFailure(error, config, url);
        if (final) throw final;
        if (error.kind === "refused") {
          if (!mayStart) throw new DaemonGone(error.message);
          if (spawnDaemon()) started = true;
        }
        // A daemon boots in ~0.7 s: once this shim started one, poll it briskly instead of up to 2 s.
        return {
          error: unreachable(last, started),
          retryable: true,
          ...(started ? { maxDelayMs: SPAWNED_MAX_DELAY_MS } : {}),
        };
      },
      onBackoff: (delay) =>
        logger.debug(
          { delay_ms: Math.round(delay), error: last?.message },
          "daemon not reachable yet; retrying",
        ),
    });
  };

  return {
    url,
    connect,
    daemonId: () => (current ? greeting.daemonId() : undefined),
    configMismatch: () => greeting.mismatch(),
    watch: (socket, requestId, handlers) => table.watch(socket, requestId, handlers),
    listTools: (socket, signal) => table.listTools(socket, signal),
    send: (socket, frame) => table.send(socket, frame),
    async close() {
      table.cancelAll();
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

/** The hello this shim sends (resuming its session) and what it learns from each hello_ack. */
function createGreeting(config: Config, logger: Logger) {
  const ourFingerprint = providerFingerprintOf(config);
  const ourOrigin = configOrigin(config);
  let session: { id: string; secret: string } | undefined;
  let daemonId: string | undefined;
  let mismatch: ConfigMismatch | undefined;
  return {
    hello: () => ({
      op: "hello",
      ...(session !== undefined ? { session_id: session.id, resume_secret: session.secret } : {}),
      client: { name: "exai-shim", version: VERSION },
      config: {
        ...(ourOrigin.file !== undefined ? { env_file: ourOrigin.file } : {}),
        ...(ourOrigin.fileSha256 !== undefined ? { env_sha256: ourOrigin.fileSha256 } : {}),
        provider_fingerprint: ourFingerprint,
      },
    }),
    acknowledged(ack: HelloAckFrame): void {
      session =
        ack.resume_secret !== undefined ? { id: ack.session_id, secret: ack.resume_secret } : undefined;
      daemonId = ack.daemon_id;
      const theirs = ack.config;
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
    },
    daemonId: () => daemonId,
    mismatch: () => mismatch,
  };
}

/** A failed attempt that no retry can fix, as the error the call ends with (undefined: retry). */
function finalFailure(error: LinkFailure, config: Config, url: string): ExaiError | undefined {
  if (error.kind === "unverified") {
    return new ExaiError(
      "CONFIG_INVALID",
      `the daemon could not be verified: ${error.message}. Nothing was sent to it. EXAI_DATA_DIR (${config.dataDir}) must be a directory owned by you with mode 0700 (chmod 700 ${config.dataDir}), holding a daemon.sock of yours; if it is not yours, set EXAI_DATA_DIR to a directory of your own`,
      { details: { layer: "shim", reason: "daemon_unverified", variables: ["EXAI_DATA_DIR"] } },
    );
  }
  if (error.kind === "auth") {
    return new ExaiError(
      "CONFIG_INVALID",
      `the daemon at ${url} refused this shim (${error.message}); its socket should need no token — restart the daemon`,
      { details: { layer: "shim", reason: "daemon_refused", variables: [] } },
    );
  }
  return undefined;
}
