/**
 * One call_tool exchange of the shim with its daemon under one request_id, re-sent with the SAME
 * request_id after reconnects until the daemon answers (it attaches or answers from its result
 * cache, so nothing runs twice), and the mapping of the daemon's answer to an MCP result.
 */
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { ExaiError } from "../base/errors.js";
import type { Logger } from "../base/logging.js";
import { abortReason, type Deadline } from "../timing/deadline.js";
import {
  CLOSE_CODES,
  type CallToolFrame,
  type CallToolResFrame,
  type ErrorFrame,
  type ProgressFrame,
} from "../mcp/frames.js";
import { DaemonGone, type DaemonLink } from "./link.js";

/**
 * Kept off the deadline sent to the daemon so its answer arrives before the shim's ceiling, ms:
 * max(250 ms, 2 % of the budget) — 100 ms proved too tight for stdio + WebSocket transit under load.
 */
export function transitMarginMs(budgetMs: number): number {
  return Math.max(250, budgetMs * 0.02);
}

/** Where one call_tool exchange stands (for re-sends and for error messages). */
export interface Phase {
  /** The daemon acknowledged the call. */
  acked: boolean;
  /** The frame was sent at least once (a reconnect must not start a new daemon for it). */
  sent: boolean;
  /** daemon_id of the daemon it was sent to. */
  daemonId?: string;
}

/** A call_tool frame before its deadline_ms is filled in (at each send). */
export type OutgoingCall = Omit<CallToolFrame, "deadline_ms" | "arguments"> & {
  arguments: Record<string, unknown>;
};

export interface ExchangeOptions {
  link: DaemonLink;
  /** The shim's ceiling, ms (EXAI_SHIM_RPC_TIMEOUT). */
  budgetMs: number;
  /** The daemon's frame limit, bytes (EXAI_MAX_MESSAGE_MB). */
  maxFrameBytes: number;
  logger: Logger;
}

export type Exchange = (
  frame: OutgoingCall,
  deadline: Deadline,
  onProgress: ((frame: ProgressFrame) => void) | undefined,
  phase: Phase,
) => Promise<CallToolResFrame>;

/**
 * The exchange function of one shim.
 * The returned function throws ExaiError (INVALID_ARGUMENT for a frame too large or rejected by
 * the daemon; the deadline's TIMEOUT; CANCELLED; unreachable) or DaemonGone.
 */
export function createExchange(options: ExchangeOptions): Exchange {
  const { link, budgetMs, maxFrameBytes, logger } = options;
  const marginMs = transitMarginMs(budgetMs);
  return async (frame, deadline, onProgress, phase) => {
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
            // Final for this call: re-sending the same frame would close the next connection too.
            if (tooBig) reject(tooBigOnTheWire());
            else resolve("closed");
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
}

function tooBigOnTheWire(): ExaiError {
  return new ExaiError(
    "INVALID_ARGUMENT",
    `the daemon closed the connection (1009, frame too large) on this call's frame: its arguments exceed the daemon's frame limit; pass files by path instead of their contents`,
    { details: { layer: "shim", field: "arguments", close_code: CLOSE_CODES.TOO_BIG } },
  );
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
export function errorResult(payload: Record<string, unknown>): CallToolResult {
  return {
    content: [{ type: "text", text: JSON.stringify(payload, null, 2) }],
    structuredContent: payload,
    isError: true,
  };
}

/** The MCP result of the daemon's call_tool_res. */
export function resultFromFrame(frame: CallToolResFrame, traceId: string): CallToolResult {
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
