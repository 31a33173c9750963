/**
 * A bounded MCP stdio server transport (newline-delimited JSON-RPC on stdin/stdout), used by
 * `exai stdio` and `exai shim`.
 *
 * The SDK's StdioServerTransport buffers a line up to a fixed 10 MiB and, past it, closes the
 * transport — the server then exits with code 0 and the client never learns why. This transport
 * never holds more than `maxMessageBytes` of one line: a longer line is discarded as it streams in
 * while a small scanner recovers its top-level `"id"`; at the line's end the request gets a
 * JSON-RPC error naming the limit (EXAI_MAX_MESSAGE_MB). An oversized line whose id cannot be
 * recovered (not a JSON object, or no id) cannot be answered: the transport closes with
 * `failure` set so that the caller can report it and exit with a non-zero code. Oversized
 * notifications (a method and no id) are dropped with `onOversize`.
 */
import process from "node:process";
import type { Readable, Writable } from "node:stream";
import type { Transport } from "@modelcontextprotocol/sdk/shared/transport.js";
import { deserializeMessage, serializeMessage } from "@modelcontextprotocol/sdk/shared/stdio.js";
import type { JSONRPCMessage, RequestId } from "@modelcontextprotocol/sdk/types.js";
import { ExaiError } from "../base/errors.js";

/** JSON-RPC "Invalid Request": the code answered to an oversized request. */
export const MESSAGE_TOO_LARGE_CODE = -32600;

export interface OversizeEvent {
  /** Size of the discarded line, bytes (without the newline). */
  bytes: number;
  /** The limit, bytes. */
  limitBytes: number;
  /** The request id recovered from the line, if any. */
  id?: RequestId;
  /** True when the line was a notification (a method without an id): nothing to answer. */
  notification: boolean;
  /** True when a JSON-RPC error was sent for it. */
  answered: boolean;
}

export interface BoundedStdioOptions {
  /** Largest accepted message, bytes (config.limits.messageBytes). */
  maxMessageBytes: number;
  /** Default process.stdin. */
  stdin?: Readable;
  /** Default process.stdout. */
  stdout?: Writable;
  /** Called for each discarded oversized line (after its answer, if any, was written). */
  onOversize?: (event: OversizeEvent) => void;
}

/** The message of the answer to an oversized request (also used for the stderr line). */
export function oversizeMessage(bytes: number, limitBytes: number): string {
  const mib = (n: number) => `${Number((n / 1024 / 1024).toFixed(2))} MiB`;
  return (
    `message of ${bytes} bytes (${mib(bytes)}) exceeds EXAI_MAX_MESSAGE_MB (${mib(limitBytes)}); ` +
    `send file paths instead of file contents, or raise EXAI_MAX_MESSAGE_MB in the server's configuration`
  );
}

/** Stdio transport with a per-message size bound; see the module comment. */
export class BoundedStdioServerTransport implements Transport {
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: (message: JSONRPCMessage) => void;
  /** Set when the transport closed because a message could not be answered (see module comment). */
  failure?: ExaiError;

  private readonly stdin: Readable;
  private readonly stdout: Writable;
  private readonly limit: number;
  private readonly onOversize: ((event: OversizeEvent) => void) | undefined;
  /** Chunks of the current (in-bounds) line. */
  private chunks: Buffer[] = [];
  private size = 0;
  /** Non-null while discarding an oversized line. */
  private discard: IdScanner | null = null;
  private started = false;
  private closed = false;

  constructor(options: BoundedStdioOptions) {
    this.stdin = options.stdin ?? process.stdin;
    this.stdout = options.stdout ?? process.stdout;
    this.limit = options.maxMessageBytes;
    this.onOversize = options.onOversize;
  }

  private readonly onData = (chunk: Buffer): void => {
    let start = 0;
    while (start < chunk.length && !this.closed) {
      const newline = chunk.indexOf(10, start);
      const end = newline === -1 ? chunk.length : newline;
      this.take(chunk.subarray(start, end));
      if (newline === -1) break;
      this.endLine();
      start = newline + 1;
    }
  };

  private readonly onStreamError = (error: Error): void => {
    this.onerror?.(error);
  };

  /** Appends part of the current line, switching to discard mode past the limit. */
  private take(part: Buffer): void {
    if (part.length === 0) return;
    if (this.discard) {
      this.discard.feed(part);
      return;
    }
    if (this.size + part.length <= this.limit) {
      this.chunks.push(part);
      this.size += part.length;
      return;
    }
    const scanner = new IdScanner();
    for (const held of this.chunks) scanner.feed(held);
    scanner.feed(part);
    this.chunks = [];
    this.size = 0;
    this.discard = scanner;
  }

  private endLine(): void {
    if (this.discard) {
      const scanner = this.discard;
      this.discard = null;
      this.rejectOversized(scanner);
      return;
    }
    if (this.size === 0) {
      this.chunks = [];
      return;
    }
    const line = Buffer.concat(this.chunks, this.size).toString("utf8").replace(/\r$/, "");
    this.chunks = [];
    this.size = 0;
    let message: JSONRPCMessage;
    try {
      message = deserializeMessage(line);
    } catch (error) {
      this.onerror?.(error as Error);
      return;
    }
    this.onmessage?.(message);
  }

  private rejectOversized(scanner: IdScanner): void {
    const bytes = scanner.bytes;
    const text = oversizeMessage(bytes, this.limit);
    const id = scanner.id;
    if (id !== undefined) {
      void this.send({
        jsonrpc: "2.0",
        id,
        error: {
          code: MESSAGE_TOO_LARGE_CODE,
          message: text,
          data: { code: "INVALID_ARGUMENT", bytes, limit_bytes: this.limit, variable: "EXAI_MAX_MESSAGE_MB" },
        },
      }).catch((error: unknown) => this.onerror?.(error as Error));
      this.onOversize?.({ bytes, limitBytes: this.limit, id, notification: false, answered: true });
      return;
    }
    if (scanner.isNotification) {
      this.onOversize?.({ bytes, limitBytes: this.limit, notification: true, answered: false });
      return;
    }
    this.onOversize?.({ bytes, limitBytes: this.limit, notification: false, answered: false });
    this.failure = new ExaiError(
      "INVALID_ARGUMENT",
      `${text}; its request id could not be read, so it cannot be answered`,
      { details: { bytes, limit_bytes: this.limit, variable: "EXAI_MAX_MESSAGE_MB" } },
    );
    void this.close();
  }

  /** Starts reading stdin. @throws Error when already started. */
  async start(): Promise<void> {
    if (this.started) throw new Error("BoundedStdioServerTransport already started");
    this.started = true;
    this.stdin.on("data", this.onData);
    this.stdin.on("error", this.onStreamError);
  }

  /** Stops reading stdin and reports the close once. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.stdin.off("data", this.onData);
    this.stdin.off("error", this.onStreamError);
    if (this.stdin.listenerCount("data") === 0) this.stdin.pause();
    this.chunks = [];
    this.discard = null;
    this.onclose?.();
  }

  /** Writes one message; resolves once stdout accepted it (waits for 'drain' under backpressure). */
  send(message: JSONRPCMessage): Promise<void> {
    return new Promise((resolve) => {
      if (this.stdout.write(serializeMessage(message))) resolve();
      else this.stdout.once("drain", resolve);
    });
  }
}

/**
 * Streams over one JSON text and recovers the value of the top-level `"id"` key (a number or a
 * string) and whether a top-level `"method"` key exists, holding only the current key or value
 * (capped), never the text.
 */
class IdScanner {
  bytes = 0;
  id: RequestId | undefined;
  private hasMethod = false;
  private hasId = false;
  private depth = 0;
  private inString = false;
  private escaped = false;
  /** Collects the top-level string being read (a key or the id's value), capped. */
  private token: number[] | null = null;
  /** The top-level key whose value comes next (set after its ':'). */
  private pendingKey: string | null = null;
  /** The last top-level string read at depth 1, until ':' shows it was a key. */
  private lastString: string | null = null;
  /** Number characters of a top-level id value being read. */
  private numberToken: string | null = null;
  private notObject = false;

  get isNotification(): boolean {
    return this.hasMethod && !this.hasId;
  }

  feed(part: Buffer): void {
    this.bytes += part.length;
    if (this.notObject) return;
    for (let i = 0; i < part.length; i++) {
      const byte = part[i] as number;
      if (this.inString) {
        if (this.escaped) this.escaped = false;
        else if (byte === 0x5c) this.escaped = true;
        else if (byte === 0x22) {
          this.inString = false;
          if (this.token) this.endString();
          continue;
        }
        if (this.token && this.token.length < 1024) this.token.push(byte);
        continue;
      }
      if (this.numberToken !== null) {
        if (
          (byte >= 0x30 && byte <= 0x39) ||
          byte === 0x2d ||
          byte === 0x2e ||
          byte === 0x65 ||
          byte === 0x45 ||
          byte === 0x2b
        ) {
          if (this.numberToken.length < 32) this.numberToken += String.fromCharCode(byte);
          continue;
        }
        const value = Number(this.numberToken);
        if (Number.isFinite(value)) this.id = value;
        this.numberToken = null;
      }
      switch (byte) {
        case 0x22: // "
          this.inString = true;
          this.token = this.depth === 1 ? [] : null;
          break;
        case 0x7b: // {
        case 0x5b: // [
          if (this.depth === 0 && byte !== 0x7b) this.notObject = true;
          this.depth++;
          this.pendingKey = null;
          break;
        case 0x7d: // }
        case 0x5d: // ]
          this.depth--;
          break;
        case 0x3a: // :
          if (this.depth === 1 && this.lastString !== null) {
            this.pendingKey = this.lastString;
            if (this.pendingKey === "id") this.hasId = true;
            if (this.pendingKey === "method") this.hasMethod = true;
          }
          this.lastString = null;
          break;
        case 0x2c: // ,
          if (this.depth === 1) this.pendingKey = null;
          break;
        default:
          if (
            this.depth === 1 &&
            this.pendingKey === "id" &&
            ((byte >= 0x30 && byte <= 0x39) || byte === 0x2d)
          ) {
            this.numberToken = String.fromCharCode(byte);
            this.pendingKey = null;
          } else if (this.depth === 0 && byte > 0x20) {
            this.notObject = true;
            return;
          }
      }
      if (this.notObject) return;
    }
  }

  private endString(): void {
    const raw = Buffer.from(this.token ?? []).toString("utf8");
    this.token = null;
    let text = raw;
    try {
      text = JSON.parse(`"${raw}"`) as string;
    } catch {
      // A string cut at the cap or with a broken escape: its raw text is the best we have.
    }
    if (this.pendingKey === "id") {
      this.id = text;
      this.pendingKey = null;
      return;
    }
    this.pendingKey = null;
    this.lastString = text;
  }
}
