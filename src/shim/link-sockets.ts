/**
 * The shim's per-socket bookkeeping: which calls and list_tools waiters were sent on each socket
 * to the daemon, routing of the daemon's frames to them, and what each hears when its socket closes.
 */
import type { Tool } from "@modelcontextprotocol/sdk/types.js";
import WebSocket from "ws";
import type { Logger } from "../base/logging.js";
import { abortReason } from "../timing/deadline.js";
import { encodeFrame } from "../mcp/codec.js";
import { CLOSE_CODES, type ServerFrame } from "../mcp/frames.js";

/** What one in-flight call hears from the socket it was sent on. */
export interface CallWatcher {
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

export interface SocketTable {
  /** Starts tracking a greeted socket. */
  track(socket: WebSocket): void;
  /** Routes a frame the daemon sent on `socket` to the call (or list_tools waiters) it is for. */
  dispatch(socket: WebSocket, frame: ServerFrame): void;
  /** `socket` closed with `code`: every call and waiter sent on it hears about it. */
  closed(socket: WebSocket, code: number): void;
  /** See DaemonLink.watch. */
  watch(socket: WebSocket, requestId: string, handlers: CallWatcher): () => void;
  /** Asks the daemon for its tools on `socket`. Rejects when the socket closes or `signal` aborts. */
  listTools(socket: WebSocket, signal: AbortSignal): Promise<Tool[]>;
  /** Sends a frame when `socket` is open; false when it is not. */
  send(socket: WebSocket, frame: Record<string, unknown>): boolean;
  /** Sends a cancel for every watched call on every socket and forgets them. */
  cancelAll(): void;
}

/** The socket table of one daemon link. */
export function createSocketTable(logger: Logger): SocketTable {
  const sockets = new Map<WebSocket, SocketState>();
  const stateOf = (socket: WebSocket): SocketState => {
    let state = sockets.get(socket);
    if (!state) {
      state = { calls: new Map(), listWaiters: new Set() };
      // A socket that already closed had its `closed`: nothing would ever clear state kept for it.
      if (socket.readyState !== WebSocket.CLOSED) sockets.set(socket, state);
    }
    return state;
  };

  const toCall = (socket: WebSocket, requestId: string, frame: ServerFrame) => {
    const call = sockets.get(socket)?.calls.get(requestId);
    if (!call) return false;
    call.answered = true;
    call.handlers.onFrame(frame);
    return true;
  };

  const send = (socket: WebSocket, frame: Record<string, unknown>): boolean => {
    if (socket.readyState !== WebSocket.OPEN) return false;
    socket.send(encodeFrame(frame));
    return true;
  };

  return {
    track: (socket) => void stateOf(socket),
    dispatch(socket, frame) {
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
    },
    closed(socket, code) {
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
    },
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
    cancelAll() {
      for (const [open, state] of sockets) {
        for (const requestId of state.calls.keys()) send(open, { op: "cancel", request_id: requestId });
        state.calls.clear();
      }
    },
  };
}
