/**
 * request_id idempotency and explicit call_key duplicates (SPEC §6.4), above the executor.
 *
 * - A `call_tool` whose request_id is running attaches to it (the shim re-sends its in-flight calls
 *   after a reconnect); one whose request_id finished within EXAI_WS_RESULT_TTL gets the cached
 *   result. A request_id never runs twice.
 * - A request_id belongs to its owner: the session (the hello `session_id`, which a reconnecting
 *   shim presents again, so a re-send after a reconnect is the same owner) that started it, and the
 *   fingerprint of what it asked (sha256 of name + arguments + roots). A re-sent request_id from
 *   another session, or with other arguments, gets DUPLICATE {original_request_id} — it never
 *   attaches to (nor reads the cached result of) someone else's call.
 * - `cancel` aborts a call only for its owning session; a cancel from any other session is ignored.
 *   Session ids are daemon-generated UUIDs and a session is resumed only with its resume_secret
 *   (./server.ts), so knowing a session id gives no access to its calls or cached results.
 * - Cached results are bounded by count and by bytes (EXAI_WS_RESULT_CACHE_MB; oldest evicted).
 * - A `call_tool` with an explicit call_key that another request_id is running under gets
 *   DUPLICATE {original_request_id} at once — it never waits for the first (the Python original's
 *   identical calls waited out the whole timeout).
 * - When every connection interested in a running call is gone, the call keeps running for a short
 *   grace period so a reconnecting shim can attach; then it is aborted (down to the HTTP request).
 *
 * Semantic coalescing of identical {tool, arguments} is the executor's job, not this module's.
 */
import { createHash } from "node:crypto";
import { ExaiError } from "../base/errors.js";
import { stableJson } from "../base/stable-json.js";
import type { CallToolFrame, CallToolResFrame, ProgressFrame, ServerFrame } from "../mcp/frames.js";

/** A client connection as the registry sees it. */
export interface RequestConnection {
  /** Unique per WebSocket connection (not per session: a session may reconnect). */
  readonly id: string;
  /** The session (hello `session_id`) the connection belongs to; it owns the requests it starts. */
  readonly sessionId?: string;
  /** Sends a frame; a no-op when the connection is closed. */
  send(frame: ServerFrame): void;
}

/** The final part of a call_tool_res (everything but op and request_id). */
export type CallResultBody = Omit<CallToolResFrame, "op" | "request_id">;

/** What `start` returns: known at once (for the ack), and the result later. */
export interface StartedCall {
  traceId: string;
  /** The budget the call runs under, seconds (sent in call_tool_ack). */
  timeoutS: number;
  /** Settles with the result body; must never reject. */
  result: Promise<CallResultBody>;
}

/**
 * Starts the call. `signal` aborts it (cancel, or grace expired with nobody attached);
 * `progress` fans a heartbeat out to the attached connections that asked for progress.
 */
export type StartCall = (
  signal: AbortSignal,
  progress: (heartbeat: Omit<ProgressFrame, "op" | "request_id">) => void,
) => StartedCall;

export type SubmitOutcome =
  | { kind: "started"; traceId: string }
  | { kind: "attached"; traceId: string }
  | { kind: "cached"; traceId: string }
  | {
      kind: "duplicate";
      originalRequestId: string;
      /** call_key: another request runs under that call_key; request_id: the id belongs to another session or other arguments. */
      reason: "call_key" | "request_id";
    };

/** What `cancel` did: aborted the call, found nothing running, or refused a session that does not own it. */
export type CancelOutcome = "cancelled" | "not_running" | "not_owner";

export interface RequestRegistryOptions {
  /** How long a finished result stays available to a re-sent request_id, ms (EXAI_WS_RESULT_TTL). */
  resultTtlMs: number;
  /** How long a running call with no connection attached keeps running, ms. */
  reconnectGraceMs: number;
  /** Most finished results kept (oldest evicted first). Default 10,000. */
  maxCachedResults?: number;
  /** Most bytes of finished results kept (their JSON size; oldest evicted first). Default 64 MiB. */
  maxCachedBytes?: number;
  /** Result codes that are not cached (the call never ran). Default OVER_CAPACITY, DUPLICATE. */
  uncachedCodes?: readonly string[];
}

export interface RequestRegistry {
  /**
   * Handles a call_tool frame from `connection`: starts it, attaches to it, answers it from the
   * cache, or answers DUPLICATE. Sends call_tool_ack (and the result, when known) itself.
   */
  submit(frame: CallToolFrame, connection: RequestConnection, start: StartCall): SubmitOutcome;
  /** Aborts a running call, when `sessionId` is the session that owns it. */
  cancel(requestId: string, sessionId: string | undefined, reason: ExaiError): CancelOutcome;
  /** A connection went away: its calls lose a listener; calls left with none start their grace period. */
  detach(connectionId: string): void;
  /** Calls running now. */
  running(): number;
  /** Finished results cached now. */
  cached(): number;
  /** Bytes (JSON size) of the finished results cached now. */
  cachedBytes(): number;
  /** Aborts every running call and clears every timer and cache entry. */
  close(reason: ExaiError): void;
}

interface Listener {
  connection: RequestConnection;
  progress: boolean;
}

/** Who may attach to / read / cancel a request_id. */
interface Owner {
  sessionId: string | undefined;
  /** sha256 of name + arguments + roots. */
  fingerprint: string;
}

/** sha256 of what a call_tool asks (name, arguments, roots) in stable JSON. */
export function requestFingerprint(frame: Pick<CallToolFrame, "name" | "arguments" | "roots">): string {
  return createHash("sha256")
    .update(stableJson({ name: frame.name, arguments: frame.arguments, roots: frame.roots ?? null }))
    .digest("hex");
}

const sameOwner = (owner: Owner, other: Owner) =>
  owner.sessionId === other.sessionId && owner.fingerprint === other.fingerprint;

interface RunningEntry {
  requestId: string;
  owner: Owner;
  traceId: string;
  timeoutS: number;
  callKey?: string;
  controller: AbortController;
  listeners: Map<string, Listener>;
  graceTimer?: NodeJS.Timeout;
}

interface CachedEntry {
  owner: Owner;
  traceId: string;
  timeoutS: number;
  frame: CallToolResFrame;
  /** JSON size of the frame, bytes. */
  bytes: number;
  /** Date.now() after which the entry is gone, ms. */
  expiresAt: number;
}

/** The result cache of a registry: results by request_id, bounded by count and bytes, with a TTL. */
function createResultCache(options: { ttlMs: number; maxEntries: number; maxBytes: number }) {
  let cachedBytes = 0;
  const cache = new Map<string, CachedEntry>();
  const uncache = (requestId: string): void => {
    const entry = cache.get(requestId);
    if (!entry) return;
    cache.delete(requestId);
    cachedBytes -= entry.bytes;
  };
  // Expired results are dropped lazily on lookup and by this sweep (which only frees memory).
  const sweep = setInterval(
    () => {
      const nowMs = Date.now();
      for (const [requestId, entry] of cache) if (entry.expiresAt <= nowMs) uncache(requestId);
    },
    Math.max(1000, Math.min(options.ttlMs, 60_000)),
  );
  sweep.unref();
  return {
    lookup(requestId: string): CachedEntry | undefined {
      const entry = cache.get(requestId);
      if (entry && entry.expiresAt <= Date.now()) {
        uncache(requestId);
        return undefined;
      }
      return entry;
    },
    /** Keeps a result (oldest evicted past the bounds); one larger than the whole cache is not kept. */
    store(requestId: string, entry: Omit<CachedEntry, "bytes" | "expiresAt">): void {
      const bytes = Buffer.byteLength(JSON.stringify(entry.frame));
      if (bytes > options.maxBytes) return;
      uncache(requestId);
      cache.set(requestId, { ...entry, bytes, expiresAt: Date.now() + options.ttlMs });
      cachedBytes += bytes;
      while (cache.size > options.maxEntries || cachedBytes > options.maxBytes) {
        const oldest = cache.keys().next().value;
        if (oldest === undefined) break;
        uncache(oldest);
      }
    },
    size: () => cache.size,
    bytes: () => cachedBytes,
    close(): void {
      clearInterval(sweep);
      cache.clear();
      cachedBytes = 0;
    },
  };
}

/**
 * The request registry of one daemon (request_id idempotency, ownership, call_key duplicates,
 * re-attach within the reconnect grace, the result cache).
 */
export function createRequestRegistry(options: RequestRegistryOptions): RequestRegistry {
  const uncached = new Set(options.uncachedCodes ?? ["OVER_CAPACITY", "DUPLICATE"]);
  const running = new Map<string, RunningEntry>();
  const byCallKey = new Map<string, string>();
  const cache = createResultCache({
    ttlMs: options.resultTtlMs,
    maxEntries: options.maxCachedResults ?? 10_000,
    maxBytes: options.maxCachedBytes ?? 64 * 1024 * 1024,
  });
  let closed = false;

  const listen = (entry: RunningEntry, connection: RequestConnection, progress: boolean) => {
    entry.listeners.set(connection.id, { connection, progress });
    if (entry.graceTimer) {
      clearTimeout(entry.graceTimer);
      entry.graceTimer = undefined;
    }
  };

  const finish = (entry: RunningEntry, body: CallResultBody) => {
    if (entry.graceTimer) clearTimeout(entry.graceTimer);
    running.delete(entry.requestId);
    if (entry.callKey !== undefined && byCallKey.get(entry.callKey) === entry.requestId)
      byCallKey.delete(entry.callKey);
    const frame: CallToolResFrame = { op: "call_tool_res", request_id: entry.requestId, ...body };
    // A result larger than the whole cache is delivered but not kept.
    if (!closed && !(body.error && uncached.has(body.error.code)))
      cache.store(entry.requestId, {
        owner: entry.owner,
        traceId: entry.traceId,
        timeoutS: entry.timeoutS,
        frame,
      });
    for (const listener of entry.listeners.values()) listener.connection.send(frame);
    entry.listeners.clear();
  };

  return {
    submit(frame, connection, start) {
      const requestId = frame.request_id;
      const wantsProgress = frame.progress !== false;
      const owner: Owner = { sessionId: connection.sessionId, fingerprint: requestFingerprint(frame) };
      const active = running.get(requestId);
      if (active) {
        if (!sameOwner(active.owner, owner))
          return { kind: "duplicate", originalRequestId: requestId, reason: "request_id" };
        listen(active, connection, wantsProgress);
        ack(connection, requestId, active.traceId, active.timeoutS);
        return { kind: "attached", traceId: active.traceId };
      }
      const done = cache.lookup(requestId);
      if (done) {
        if (!sameOwner(done.owner, owner))
          return { kind: "duplicate", originalRequestId: requestId, reason: "request_id" };
        ack(connection, requestId, done.traceId, done.timeoutS);
        connection.send(done.frame);
        return { kind: "cached", traceId: done.traceId };
      }
      if (frame.call_key !== undefined) {
        const original = byCallKey.get(frame.call_key);
        if (original !== undefined && running.has(original))
          return { kind: "duplicate", originalRequestId: original, reason: "call_key" };
      }

      const entry: RunningEntry = {
        requestId,
        owner,
        traceId: "",
        timeoutS: 0,
        ...(frame.call_key !== undefined ? { callKey: frame.call_key } : {}),
        controller: new AbortController(),
        listeners: new Map(),
      };
      listen(entry, connection, wantsProgress);
      running.set(requestId, entry);
      if (entry.callKey !== undefined) byCallKey.set(entry.callKey, requestId);
      const started = start(entry.controller.signal, (heartbeat) => {
        for (const listener of entry.listeners.values()) {
          if (listener.progress)
            listener.connection.send({ op: "progress", request_id: requestId, ...heartbeat });
        }
      });
      entry.traceId = started.traceId;
      entry.timeoutS = started.timeoutS;
      ack(connection, requestId, started.traceId, started.timeoutS);
      void started.result.then((body) => finish(entry, body));
      return { kind: "started", traceId: started.traceId };
    },

    cancel(requestId, sessionId, reason) {
      const entry = running.get(requestId);
      if (!entry) return "not_running";
      if (entry.owner.sessionId !== sessionId) return "not_owner";
      entry.controller.abort(reason);
      return "cancelled";
    },

    detach(connectionId) {
      for (const entry of running.values()) {
        if (!entry.listeners.delete(connectionId) || entry.listeners.size > 0 || entry.graceTimer) continue;
        armGrace(entry, options.reconnectGraceMs);
      }
    },

    running: () => running.size,
    cached: () => cache.size(),
    cachedBytes: () => cache.bytes(),

    close(reason) {
      closed = true;
      for (const entry of running.values()) {
        if (entry.graceTimer) clearTimeout(entry.graceTimer);
        entry.controller.abort(reason);
      }
      cache.close();
    },
  };
}

/** Nobody listens to `entry` any more: it is aborted unless a connection re-attaches within `graceMs`. */
function armGrace(entry: RunningEntry, graceMs: number): void {
  entry.graceTimer = setTimeout(() => {
    entry.graceTimer = undefined;
    if (entry.listeners.size === 0) {
      entry.controller.abort(
        new ExaiError(
          "CANCELLED",
          `the client disconnected and did not re-attach to request ${entry.requestId} within ${graceMs / 1000} s`,
        ),
      );
    }
  }, graceMs);
  entry.graceTimer.unref();
}

function ack(connection: RequestConnection, requestId: string, traceId: string, timeoutS: number): void {
  connection.send({ op: "call_tool_ack", request_id: requestId, trace_id: traceId, timeout_s: timeoutS });
}
