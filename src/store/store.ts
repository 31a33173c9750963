/**
 * The persistence contract of exai (SPEC §8): conversation threads and their turns, files uploaded
 * to providers (keyed by content sha256) and the tool-call log.
 *
 * Every method is async so that a networked implementation (Postgres) can plug in behind the same
 * interface; the embedded SQLite implementation (`./sqlite.ts`) resolves synchronously underneath.
 * All timestamps are epoch milliseconds; all durations (`ttlMs`) are milliseconds.
 */

/** A file referenced by a turn (kept for callers that want a typed wrapper around a path). */
export interface TurnFileRef {
  path: string;
}

/** One stored turn of a conversation thread. */
export interface Turn {
  /** 0-based position within the thread; contiguous. */
  index: number;
  role: "user" | "assistant";
  /** The tool that produced this turn (any tool may continue any thread). */
  toolName: string;
  /** Text of the turn. */
  content: string;
  /** Absolute paths referenced by this turn (their content is re-embedded on continuation). */
  files: string[];
  model?: string;
  provider?: string;
  /** Tool-specific fields (e.g. a workflow step's fields); must be JSON-serialisable. */
  data?: Record<string, unknown>;
  /** Epoch ms. */
  createdAt: number;
}

/** A conversation thread, named by its `continuation_id`. */
export interface Thread {
  id: string;
  /** The tool that started the thread. */
  toolName: string;
  /** Epoch ms. */
  createdAt: number;
  /** Epoch ms of the last turn appended (or creation). */
  updatedAt: number;
  /** Epoch ms after which the thread is gone (refreshed by every `addTurns`). */
  expiresAt: number;
  /** Turns in order of `index`. */
  turns: Turn[];
  /** The thread this one was branched from, if any. */
  parentId?: string;
}

/** A turn to append; `index` and `createdAt` are assigned by the store. */
export interface NewTurn {
  role: "user" | "assistant";
  toolName: string;
  content: string;
  files?: string[];
  model?: string;
  provider?: string;
  data?: Record<string, unknown>;
}

/** A file uploaded to a provider, found again by the sha256 of its content. */
export interface StoredFile {
  /** Lower-case hex sha256 of the file content. */
  sha256: string;
  provider: string;
  /** The id the provider gave the upload. */
  providerFileId: string;
  filename: string;
  bytes: number;
  /** Epoch ms of the (latest) upload. */
  createdAt: number;
}

/** One entry of the tool-call log; extra keys are kept as-is (JSON). */
export interface ToolCallRecord {
  /** Epoch ms when the call finished. */
  at: number;
  tool: string;
  traceId: string;
  /** "ok", "error", "cancelled"… */
  outcome: string;
  durationMs: number;
  /** ExaiError code when the call failed. */
  code?: string;
  model?: string;
  provider?: string;
  [key: string]: unknown;
}

export interface Store {
  /**
   * Creates an empty thread expiring `ttlMs` from now. `id` defaults to a fresh UUID.
   * Throws ExaiError INVALID_ARGUMENT when `ttlMs` is not a positive number or when a live thread
   * with the given `id` already exists. `now` (epoch ms) defaults to `Date.now()` (for tests).
   */
  createThread(input: {
    toolName: string;
    ttlMs: number;
    id?: string;
    parentId?: string;
    now?: number;
  }): Promise<Thread>;
  /** The thread with its turns, or undefined when unknown or expired at `now` (epoch ms, default now). */
  getThread(id: string, now?: number): Promise<Thread | undefined>;
  /**
   * Appends turns atomically and refreshes the TTL; throws ExaiError INVALID_ARGUMENT (field
   * continuation_id) when the thread would exceed maxTurns, naming the limit and
   * MAX_CONVERSATION_TURNS and saying to start a new thread. Also throws INVALID_ARGUMENT (field
   * continuation_id) when the thread is unknown or expired. `now` (epoch ms) defaults to `Date.now()`.
   */
  addTurns(
    id: string,
    turns: NewTurn[],
    options: { ttlMs: number; maxTurns: number; now?: number },
  ): Promise<Thread>;
  /** Records (or replaces) the upload of a file to a provider; unique per (sha256, provider). */
  putFile(file: Omit<StoredFile, "createdAt">): Promise<void>;
  /** The recorded upload of the content `sha256` to `provider`, if any. */
  findFile(sha256: string, provider: string): Promise<StoredFile | undefined>;
  /** All recorded uploads (of one provider when given), oldest first. */
  listFiles(provider?: string): Promise<StoredFile[]>;
  /** Forgets an upload (no-op when unknown). */
  deleteFile(provider: string, providerFileId: string): Promise<void>;
  /** Appends one entry to the tool-call log. */
  recordToolCall(record: ToolCallRecord): Promise<void>;
  /** The newest `limit` entries of the tool-call log, newest first. */
  recentToolCalls(limit: number): Promise<ToolCallRecord[]>;
  /** Deletes threads expired at `now` (epoch ms, default now) with their turns; returns how many threads. */
  purgeExpired(now?: number): Promise<number>;
  /** Releases the underlying connection; idempotent. Any later call rejects. */
  close(): Promise<void>;
}
