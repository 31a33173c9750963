/**
 * An in-memory WebSocket pair with the `ws` interface the daemon and the shim use (the MCP SDK's
 * InMemoryTransport pattern, one level down): the shim's link dials the daemon's connection
 * handler (`Daemon.serve`) without a network socket. Messages are delivered asynchronously in
 * order; a side can stop reading (`pause`), which grows its peer's `bufferedAmount` like a socket
 * whose reader stalls; `terminate` drops both sides at once (code 1006), as a cut connection.
 */
import { EventEmitter } from "node:events";
import type WebSocket from "ws";
import type { Daemon } from "../../src/daemon/server.js";
import type { LinkTransport } from "../../src/shim/link.js";

const CONNECTING = 0;
const OPEN = 1;
const CLOSING = 2;
const CLOSED = 3;

/** One side of an in-memory WebSocket. */
export class MemorySocket extends EventEmitter {
  readonly CONNECTING = CONNECTING;
  readonly OPEN = OPEN;
  readonly CLOSING = CLOSING;
  readonly CLOSED = CLOSED;
  readyState: number = CONNECTING;
  peer!: MemorySocket;
  /** Every text frame this side sent, parsed. */
  readonly sent: Array<Record<string, unknown>> = [];
  /** Bytes sent to the peer that it has not read yet. */
  bufferedAmount = 0;
  private paused = false;
  private readonly inbox: Buffer[] = [];

  send(data: string, callback?: (error?: Error) => void): void {
    if (this.readyState !== OPEN) {
      callback?.(new Error("WebSocket is not open"));
      return;
    }
    this.sent.push(JSON.parse(data) as Record<string, unknown>);
    const bytes = Buffer.from(data, "utf8");
    this.bufferedAmount += bytes.length;
    this.peer.inbox.push(bytes);
    setImmediate(() => {
      this.peer.drain();
      callback?.();
    });
  }

  /** Stops reading: what the peer sends stays in its bufferedAmount. */
  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
    this.drain();
  }

  close(code = 1000, reason = ""): void {
    if (this.readyState === CLOSING || this.readyState === CLOSED) return;
    this.readyState = CLOSING;
    this.peer.readyState = CLOSING;
    setImmediate(() => this.finish(code, reason));
  }

  terminate(): void {
    if (this.readyState === CLOSED) return;
    this.readyState = CLOSING;
    this.peer.readyState = CLOSING;
    setImmediate(() => this.finish(1006, ""));
  }

  ping(): void {
    setImmediate(() => {
      if (this.readyState === OPEN) this.emit("pong");
    });
  }

  private drain(): void {
    while (!this.paused && this.inbox.length > 0 && this.readyState === OPEN) {
      const bytes = this.inbox.shift() as Buffer;
      this.peer.bufferedAmount -= bytes.length;
      this.emit("message", bytes, false);
    }
  }

  private finish(code: number, reason: string): void {
    for (const side of [this, this.peer]) {
      if (side.readyState === CLOSED) continue;
      side.readyState = CLOSED;
      side.inbox.length = 0;
      side.emit("close", code, Buffer.from(reason, "utf8"));
    }
  }
}

/** A connected pair: `client` opens on the next tick. */
export function memorySocketPair(): { client: MemorySocket; server: MemorySocket } {
  const client = new MemorySocket();
  const server = new MemorySocket();
  client.peer = server;
  server.peer = client;
  server.readyState = OPEN;
  setImmediate(() => {
    if (client.readyState !== CONNECTING) return;
    client.readyState = OPEN;
    client.emit("open");
  });
  return { client, server };
}

export interface MemoryLink extends LinkTransport {
  /** The client sides dialled so far, in order (the last is the current one). */
  readonly sockets: MemorySocket[];
  /** While true, dialling fails as if nothing listened (ECONNREFUSED). */
  refuse: boolean;
}

/** A shim link transport that dials `daemon.serve` in memory. */
export function memoryLink(daemon: Daemon): MemoryLink {
  const link: MemoryLink = {
    sockets: [],
    refuse: false,
    verify: () => ({ kind: "ok", path: "memory" }),
    dial() {
      const { client, server } = memorySocketPair();
      link.sockets.push(client);
      if (link.refuse) {
        client.readyState = CLOSED;
        setImmediate(() => {
          client.emit(
            "error",
            Object.assign(new Error("connect ECONNREFUSED memory"), { code: "ECONNREFUSED" }),
          );
          client.emit("close", 1006, Buffer.alloc(0));
        });
      } else daemon.serve(server as unknown as WebSocket);
      return client as unknown as WebSocket;
    },
  };
  return link;
}
