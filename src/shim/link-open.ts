/**
 * One connection attempt of the shim to its daemon: verify the socket is the user's own, connect,
 * send the hello, wait for the hello_ack.
 */
import WebSocket, { type RawData } from "ws";
import type { Logger } from "../base/logging.js";
import { frameText, encodeFrame } from "../mcp/codec.js";
import { CLOSE_CODES, parseServerFrame, type HelloAckFrame, type ServerFrame } from "../mcp/frames.js";
import type { SocketCheck } from "../mcp/trust.js";

/** Why a connection attempt failed. */
export class LinkFailure extends Error {
  constructor(
    readonly kind: "refused" | "auth" | "failed" | "unverified",
    message: string,
  ) {
    super(message);
  }
}

/** How the link reaches a daemon: the Unix socket by default, an in-memory pair in tests. */
export interface LinkTransport {
  /** Checked before every attempt: nothing is sent to a socket that is not proven to be ours. */
  verify(): SocketCheck;
  /** Opens a WebSocket to the daemon; `timeoutMs` bounds its handshake. */
  dial(timeoutMs: number): WebSocket;
}

export interface OpenOptions {
  transport: LinkTransport;
  timeoutMs: number;
  /** The hello frame to send (built per attempt: it carries the session to resume). */
  hello(): Record<string, unknown>;
  /** The hello_ack arrived on `socket` (the attempt then resolves with it). */
  onGreeted(socket: WebSocket, ack: HelloAckFrame): void;
  /** A frame after the hello_ack. */
  onFrame(socket: WebSocket, frame: ServerFrame): void;
  /** The socket closed (after or before its hello_ack). */
  onClosed(socket: WebSocket, code: number): void;
  logger: Logger;
}

/**
 * One attempt: verify, connect, hello, hello_ack.
 * @throws LinkFailure ("refused": nothing listens; "unverified": the socket is not the user's own;
 *   "auth": the daemon refused the hello; "failed": anything else, within `timeoutMs`).
 */
export function openConnection(options: OpenOptions): Promise<WebSocket> {
  const { timeoutMs, logger } = options;
  return new Promise<WebSocket>((resolve, reject) => {
    // Nothing is sent to a socket that cannot be proven to be this user's own daemon.
    const check = options.transport.verify();
    if (check.kind === "missing") {
      reject(new LinkFailure("refused", `no daemon socket at ${check.path}`));
      return;
    }
    if (check.kind === "unverified") {
      reject(new LinkFailure("unverified", check.reason));
      return;
    }
    const socket = options.transport.dial(timeoutMs);
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
    socket.on("open", () => socket.send(encodeFrame(options.hello())));
    socket.on("message", (data: RawData) => {
      const parsed = parseServerFrame(frameText(data));
      if (!parsed.ok) {
        logger.warn({ code: parsed.code, message: parsed.message }, "invalid frame from the daemon");
        return;
      }
      if (greeted) {
        options.onFrame(socket, parsed.frame);
        return;
      }
      if (parsed.frame.op !== "hello_ack") {
        fail(new LinkFailure("failed", `expected hello_ack, got ${parsed.frame.op}`));
        return;
      }
      greeted = true;
      settled = true;
      clearTimeout(timer);
      options.onGreeted(socket, parsed.frame);
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
      options.onClosed(socket, code);
    });
  });
}
