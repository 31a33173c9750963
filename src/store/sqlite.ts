/**
 * The embedded Store (SPEC §8): SQLite through better-sqlite3, in WAL mode so several processes
 * (the daemon and in-process servers) can share `~/.exai/exai.db`: readers never block the writer,
 * and writers wait up to `busy_timeout` for each other. Every write runs in a transaction; the ones
 * that read before they write (`addTurns`, `createThread`) take the write lock up front
 * (`BEGIN IMMEDIATE`) so that two processes cannot both pass the same check.
 */
import { randomUUID } from "node:crypto";
import { mkdirSync } from "node:fs";
import { dirname, resolve } from "node:path";

import Database from "better-sqlite3";

import { ExaiError, invalidArgument } from "../base/errors.js";
import type { NewTurn, Store, StoredFile, Thread, ToolCallRecord, Turn } from "./store.js";

/**
 * Ordered schema migrations; migration `i` brings the schema to version `i + 1`. Never edit or
 * reorder an entry that has shipped: append a new one. The Postgres store mirrors these tables.
 */
const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE conversations (
    id TEXT PRIMARY KEY,
    tool_name TEXT NOT NULL,
    parent_id TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
  );
  CREATE INDEX conversations_expires_at ON conversations (expires_at);

  CREATE TABLE messages (
    conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
    tool_name TEXT NOT NULL,
    content TEXT NOT NULL,
    files TEXT NOT NULL DEFAULT '[]',
    model TEXT,
    provider TEXT,
    data TEXT,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (conversation_id, idx)
  );

  CREATE TABLE files (
    sha256 TEXT NOT NULL,
    provider TEXT NOT NULL,
    provider_file_id TEXT NOT NULL,
    filename TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (sha256, provider)
  );
  CREATE INDEX files_provider_file_id ON files (provider, provider_file_id);

  CREATE TABLE conversation_files (
    conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    path TEXT NOT NULL,
    PRIMARY KEY (conversation_id, path)
  );

  CREATE TABLE tool_calls (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    json TEXT NOT NULL
  );
  CREATE INDEX tool_calls_at ON tool_calls (at);
  `,
];

/** The schema version this build writes (the number of migrations). */
export const SQLITE_SCHEMA_VERSION = MIGRATIONS.length;

/** Tool-call log entries kept by `purgeExpired` (newest win). */
const DEFAULT_TOOL_CALL_RETENTION = 10_000;

export interface SqliteStoreOptions {
  /** Database file path, or ":memory:" for a private in-memory database. */
  path: string;
  /** How many tool-call log entries `purgeExpired` keeps (newest first); default 10,000. */
  toolCallRetention?: number;
}

/**
 * Opens (creating when needed) the SQLite store at `options.path`: creates the parent directory
 * (mode 0o700), sets WAL / busy_timeout 250 ms / foreign keys, and applies pending migrations,
 * each in its own transaction (an up-to-date database applies nothing). Synchronous; throws
 * ExaiError CONFIG_INVALID when the file cannot be opened or migrated (e.g. not a database).
 */
export function openSqliteStore(options: SqliteStoreOptions): Store {
  return new SqliteStore(options);
}

/** A private in-memory store (same implementation) for tests. */
export function openMemoryStore(): Store {
  return new SqliteStore({ path: ":memory:" });
}

interface ConversationRow {
  id: string;
  tool_name: string;
  parent_id: string | null;
  created_at: number;
  updated_at: number;
  expires_at: number;
}

interface MessageRow {
  idx: number;
  role: string;
  tool_name: string;
  content: string;
  files: string;
  model: string | null;
  provider: string | null;
  data: string | null;
  created_at: number;
}

interface FileRow {
  sha256: string;
  provider: string;
  provider_file_id: string;
  filename: string;
  bytes: number;
  created_at: number;
}

function isInMemory(path: string): boolean {
  return path === ":memory:" || path === "" || path.startsWith("file::memory:");
}

/** Applies pending migrations; each runs in its own IMMEDIATE transaction, re-checking the version. */
function migrate(db: Database.Database): void {
  db.exec(
    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)",
  );
  const currentVersion = db.prepare<[], { v: number | null }>("SELECT MAX(version) AS v FROM schema_version");
  const recordVersion = db.prepare<[number, number]>(
    "INSERT INTO schema_version (version, applied_at) VALUES (?, ?)",
  );
  MIGRATIONS.forEach((sql, i) => {
    const version = i + 1;
    const apply = db.transaction(() => {
      // Re-read inside the write lock: another process may have migrated meanwhile.
      if ((currentVersion.get()?.v ?? 0) >= version) return;
      db.exec(sql);
      recordVersion.run(version, Date.now());
    });
    if ((currentVersion.get()?.v ?? 0) < version) apply.immediate();
  });
}

function parseJson<T>(text: string | null, fallback: T): T {
  if (text === null) return fallback;
  try {
    return JSON.parse(text) as T;
  } catch {
    return fallback;
  }
}

function toTurn(row: MessageRow): Turn {
  const turn: Turn = {
    index: row.idx,
    role: row.role === "assistant" ? "assistant" : "user",
    toolName: row.tool_name,
    content: row.content,
    files: parseJson<string[]>(row.files, []),
    createdAt: row.created_at,
  };
  if (row.model !== null) turn.model = row.model;
  if (row.provider !== null) turn.provider = row.provider;
  const data = parseJson<Record<string, unknown> | null>(row.data, null);
  if (data !== null) turn.data = data;
  return turn;
}

function toStoredFile(row: FileRow): StoredFile {
  return {
    sha256: row.sha256,
    provider: row.provider,
    providerFileId: row.provider_file_id,
    filename: row.filename,
    bytes: row.bytes,
    createdAt: row.created_at,
  };
}

function checkTtl(ttlMs: number): void {
  if (!Number.isFinite(ttlMs) || ttlMs <= 0) {
    throw invalidArgument("ttlMs", `must be a positive number of milliseconds, got ${ttlMs}.`);
  }
}

/** Every statement the store runs, prepared once per connection. */
function prepareStatements(db: Database.Database) {
  return {
    insertConversation: db.prepare<[string, string, string | null, number, number, number]>(
      "INSERT INTO conversations (id, tool_name, parent_id, created_at, updated_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)",
    ),
    deleteExpiredConversation: db.prepare<[string, number]>(
      "DELETE FROM conversations WHERE id = ? AND expires_at <= ?",
    ),
    getConversation: db.prepare<[string], ConversationRow>("SELECT * FROM conversations WHERE id = ?"),
    getMessages: db.prepare<[string], MessageRow>(
      "SELECT idx, role, tool_name, content, files, model, provider, data, created_at FROM messages WHERE conversation_id = ? ORDER BY idx",
    ),
    countMessages: db.prepare<[string], { n: number }>(
      "SELECT COUNT(*) AS n FROM messages WHERE conversation_id = ?",
    ),
    insertMessage: db.prepare<
      [string, number, string, string, string, string, string | null, string | null, string | null, number]
    >(
      "INSERT INTO messages (conversation_id, idx, role, tool_name, content, files, model, provider, data, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    ),
    insertConversationFile: db.prepare<[string, string]>(
      "INSERT OR IGNORE INTO conversation_files (conversation_id, path) VALUES (?, ?)",
    ),
    touchConversation: db.prepare<[number, number, string]>(
      "UPDATE conversations SET updated_at = ?, expires_at = ? WHERE id = ?",
    ),
    purgeConversations: db.prepare<[number]>("DELETE FROM conversations WHERE expires_at <= ?"),
    putFile: db.prepare<[string, string, string, string, number, number]>(
      `INSERT INTO files (sha256, provider, provider_file_id, filename, bytes, created_at) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (sha256, provider) DO UPDATE SET provider_file_id = excluded.provider_file_id,
         filename = excluded.filename, bytes = excluded.bytes, created_at = excluded.created_at`,
    ),
    findFile: db.prepare<[string, string], FileRow>("SELECT * FROM files WHERE sha256 = ? AND provider = ?"),
    listFiles: db.prepare<[], FileRow>("SELECT * FROM files ORDER BY created_at, rowid"),
    listProviderFiles: db.prepare<[string], FileRow>(
      "SELECT * FROM files WHERE provider = ? ORDER BY created_at, rowid",
    ),
    deleteFile: db.prepare<[string, string]>("DELETE FROM files WHERE provider = ? AND provider_file_id = ?"),
    insertToolCall: db.prepare<[number, string]>("INSERT INTO tool_calls (at, json) VALUES (?, ?)"),
    recentToolCalls: db.prepare<[number], { json: string }>(
      "SELECT json FROM tool_calls ORDER BY id DESC LIMIT ?",
    ),
    trimToolCalls: db.prepare<[number]>(
      "DELETE FROM tool_calls WHERE id <= (SELECT MAX(id) FROM tool_calls) - ?",
    ),
  };
}

function checkTurn(turn: NewTurn, i: number): void {
  if (turn.role !== "user" && turn.role !== "assistant") {
    throw invalidArgument(
      `turns[${i}].role`,
      `must be "user" or "assistant", got ${JSON.stringify(turn.role)}.`,
    );
  }
  if (typeof turn.content !== "string") {
    throw invalidArgument(`turns[${i}].content`, "must be a string.");
  }
  if (
    turn.files !== undefined &&
    !(Array.isArray(turn.files) && turn.files.every((f) => typeof f === "string"))
  ) {
    throw invalidArgument(`turns[${i}].files`, "must be an array of path strings.");
  }
}

class SqliteStore implements Store {
  private readonly db: Database.Database;
  private readonly toolCallRetention: number;
  private closed = false;
  private readonly stmt: ReturnType<typeof prepareStatements>;
  private readonly getThreadTx: Database.Transaction<(id: string, now: number) => Thread | undefined>;
  private readonly createThreadTx: Database.Transaction<(row: ConversationRow) => Thread>;
  private readonly addTurnsTx: Database.Transaction<
    (id: string, turns: NewTurn[], ttlMs: number, maxTurns: number, now: number) => Thread
  >;
  private readonly purgeTx: Database.Transaction<(now: number) => number>;

  constructor(options: SqliteStoreOptions) {
    const path = options.path;
    this.toolCallRetention = Math.max(
      0,
      Math.floor(options.toolCallRetention ?? DEFAULT_TOOL_CALL_RETENTION),
    );
    let db: Database.Database | undefined;
    try {
      if (!isInMemory(path)) mkdirSync(dirname(resolve(path)), { recursive: true, mode: 0o700 });
      db = new Database(path);
      // better-sqlite3 is synchronous: a lock wait blocks this whole process, so keep it short. Writes
      // are a few rows in one transaction; another process holds the lock for milliseconds.
      db.pragma("busy_timeout = 250");
      db.pragma("journal_mode = WAL");
      // WAL + NORMAL: commits survive a process crash and the file is never corrupted; only a power
      // loss can drop the last transactions — acceptable for conversation history, and it saves an
      // fsync per call.
      db.pragma("synchronous = NORMAL");
      db.pragma("foreign_keys = ON");
      migrate(db);
    } catch (error) {
      db?.close();
      const message = error instanceof Error ? error.message : String(error);
      throw new ExaiError(
        "CONFIG_INVALID",
        `Cannot open the exai database at ${path}: ${message}. Check that the directory is writable ` +
          `and the file is an SQLite database (set EXAI_DATA_DIR to use another location).`,
        { cause: error, details: { path, variables: ["EXAI_DATA_DIR"] } },
      );
    }
    this.db = db;

    this.stmt = prepareStatements(db);

    this.getThreadTx = db.transaction((id: string, now: number): Thread | undefined => {
      const row = this.stmt.getConversation.get(id);
      if (row === undefined || row.expires_at <= now) return undefined;
      return this.toThread(row);
    });

    this.createThreadTx = db.transaction((row: ConversationRow): Thread => {
      this.stmt.deleteExpiredConversation.run(row.id, row.created_at);
      if (this.stmt.getConversation.get(row.id) !== undefined) {
        throw invalidArgument(
          "continuation_id",
          `thread ${row.id} already exists. Omit continuation_id to start a new thread with a fresh id.`,
        );
      }
      this.stmt.insertConversation.run(
        row.id,
        row.tool_name,
        row.parent_id,
        row.created_at,
        row.updated_at,
        row.expires_at,
      );
      return this.toThread(row);
    });

    this.addTurnsTx = db.transaction(
      (id: string, turns: NewTurn[], ttlMs: number, maxTurns: number, now: number): Thread => {
        const row = this.stmt.getConversation.get(id);
        if (row === undefined || row.expires_at <= now) {
          throw invalidArgument(
            "continuation_id",
            `thread ${id} was not found or has expired (threads expire after CONVERSATION_TIMEOUT_HOURS ` +
              `without a new turn). Start a new thread by omitting continuation_id.`,
          );
        }
        const existing = this.stmt.countMessages.get(id)?.n ?? 0;
        if (existing + turns.length > maxTurns) {
          throw invalidArgument(
            "continuation_id",
            `thread ${id} has ${existing} turns and adding ${turns.length} would exceed the limit of ` +
              `${maxTurns} turns per thread (MAX_CONVERSATION_TURNS). Start a new thread by omitting ` +
              `continuation_id, and summarise what matters from this one in the prompt.`,
            { max_turns: maxTurns, turns: existing },
          );
        }
        turns.forEach((turn, offset) => {
          const files = turn.files ?? [];
          this.stmt.insertMessage.run(
            id,
            existing + offset,
            turn.role,
            turn.toolName,
            turn.content,
            JSON.stringify(files),
            turn.model ?? null,
            turn.provider ?? null,
            turn.data === undefined ? null : JSON.stringify(turn.data),
            now,
          );
          for (const path of files) this.stmt.insertConversationFile.run(id, path);
        });
        this.stmt.touchConversation.run(now, now + ttlMs, id);
        return this.toThread({ ...row, updated_at: now, expires_at: now + ttlMs });
      },
    );

    this.purgeTx = db.transaction((now: number): number => {
      const result = this.stmt.purgeConversations.run(now);
      this.stmt.trimToolCalls.run(this.toolCallRetention);
      return result.changes;
    });
  }

  private toThread(row: ConversationRow): Thread {
    const thread: Thread = {
      id: row.id,
      toolName: row.tool_name,
      createdAt: row.created_at,
      updatedAt: row.updated_at,
      expiresAt: row.expires_at,
      turns: this.stmt.getMessages.all(row.id).map(toTurn),
    };
    if (row.parent_id !== null) thread.parentId = row.parent_id;
    return thread;
  }

  private ensureOpen(): void {
    if (this.closed) {
      throw new ExaiError(
        "INTERNAL",
        "The exai store was used after it was closed. This is a bug; please report it.",
      );
    }
  }

  async createThread(input: {
    toolName: string;
    ttlMs: number;
    id?: string;
    parentId?: string;
    now?: number;
  }): Promise<Thread> {
    this.ensureOpen();
    checkTtl(input.ttlMs);
    const now = input.now ?? Date.now();
    const row: ConversationRow = {
      id: input.id ?? randomUUID(),
      tool_name: input.toolName,
      parent_id: input.parentId ?? null,
      created_at: now,
      updated_at: now,
      expires_at: now + input.ttlMs,
    };
    return this.createThreadTx.immediate(row);
  }

  async getThread(id: string, now: number = Date.now()): Promise<Thread | undefined> {
    this.ensureOpen();
    // A read transaction gives a consistent snapshot of the thread row and its messages.
    return this.getThreadTx.deferred(id, now);
  }

  async addTurns(
    id: string,
    turns: NewTurn[],
    options: { ttlMs: number; maxTurns: number; now?: number },
  ): Promise<Thread> {
    this.ensureOpen();
    checkTtl(options.ttlMs);
    if (!Number.isInteger(options.maxTurns) || options.maxTurns < 1) {
      throw invalidArgument("maxTurns", `must be a positive integer, got ${options.maxTurns}.`);
    }
    turns.forEach(checkTurn);
    return this.addTurnsTx.immediate(id, turns, options.ttlMs, options.maxTurns, options.now ?? Date.now());
  }

  async putFile(file: Omit<StoredFile, "createdAt">): Promise<void> {
    this.ensureOpen();
    this.stmt.putFile.run(
      file.sha256,
      file.provider,
      file.providerFileId,
      file.filename,
      file.bytes,
      Date.now(),
    );
  }

  async findFile(sha256: string, provider: string): Promise<StoredFile | undefined> {
    this.ensureOpen();
    const row = this.stmt.findFile.get(sha256, provider);
    return row === undefined ? undefined : toStoredFile(row);
  }

  async listFiles(provider?: string): Promise<StoredFile[]> {
    this.ensureOpen();
    const rows =
      provider === undefined ? this.stmt.listFiles.all() : this.stmt.listProviderFiles.all(provider);
    return rows.map(toStoredFile);
  }

  async deleteFile(provider: string, providerFileId: string): Promise<void> {
    this.ensureOpen();
    this.stmt.deleteFile.run(provider, providerFileId);
  }

  async recordToolCall(record: ToolCallRecord): Promise<void> {
    this.ensureOpen();
    this.stmt.insertToolCall.run(record.at, JSON.stringify(record));
  }

  async recentToolCalls(limit: number): Promise<ToolCallRecord[]> {
    this.ensureOpen();
    const n = Number.isFinite(limit) ? Math.max(0, Math.floor(limit)) : 0;
    if (n === 0) return [];
    return this.stmt.recentToolCalls.all(n).map((row) => JSON.parse(row.json) as ToolCallRecord);
  }

  async purgeExpired(now: number = Date.now()): Promise<number> {
    this.ensureOpen();
    return this.purgeTx.immediate(now);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.db.close();
  }
}
