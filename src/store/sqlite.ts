/**
 * The embedded Store (SPEC §8): SQLite through better-sqlite3, in WAL mode so several processes
 * (the daemon and in-process servers) can share `~/.exai/exai.db`: readers never block the writer,
 * and writers wait up to `busy_timeout` for each other. Every write runs in a transaction; the ones
 * that read before they write (`addTurns`, `createThread`) take the write lock up front
 * (`BEGIN IMMEDIATE`) so that two processes cannot both pass the same check.
 */
import { randomUUID } from "node:crypto";

import type Database from "better-sqlite3";

import { ExaiError, invalidArgument } from "../base/errors.js";
import { prepareFileStatements, toStoredFile } from "./sqlite-files.js";
import { openDatabase } from "./sqlite-schema.js";
import {
  checkTtl,
  checkTurn,
  prepareThreadStatements,
  threadTransactions,
  type ConversationRow,
  type ThreadTransactions,
} from "./sqlite-threads.js";
import type { NewTurn, Store, StoredFile, Thread, ToolCallRecord } from "./store.js";

export { SQLITE_SCHEMA_VERSION } from "./sqlite-schema.js";

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

/** Every statement the store runs, prepared once per connection. */
function prepareStatements(db: Database.Database) {
  return { ...prepareThreadStatements(db), ...prepareFileStatements(db) };
}

class SqliteStore implements Store {
  private readonly db: Database.Database;
  private readonly toolCallRetention: number;
  private closed = false;
  private readonly stmt: ReturnType<typeof prepareStatements>;
  private readonly threads: ThreadTransactions;
  private readonly purgeTx: Database.Transaction<(now: number) => number>;

  constructor(options: SqliteStoreOptions) {
    this.toolCallRetention = Math.max(
      0,
      Math.floor(options.toolCallRetention ?? DEFAULT_TOOL_CALL_RETENTION),
    );
    const db = openDatabase(options.path);
    this.db = db;

    this.stmt = prepareStatements(db);
    this.threads = threadTransactions(db, this.stmt);

    this.purgeTx = db.transaction((now: number): number => {
      const result = this.stmt.purgeConversations.run(now);
      this.stmt.trimToolCalls.run(this.toolCallRetention);
      return result.changes;
    });
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
    return this.threads.createThread.immediate(row);
  }

  async getThread(id: string, now: number = Date.now()): Promise<Thread | undefined> {
    this.ensureOpen();
    // A read transaction gives a consistent snapshot of the thread row and its messages.
    return this.threads.getThread.deferred(id, now);
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
    return this.threads.addTurns.immediate(
      id,
      turns,
      options.ttlMs,
      options.maxTurns,
      options.now ?? Date.now(),
    );
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
