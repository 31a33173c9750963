/**
 * The SQLite store's schema (SPEC §8) and opening a connection: the ordered migrations, applying
 * the pending ones, and the connection settings every process sharing the file uses.
 */
import { mkdirSync } from "node:fs";
import { dirname, resolve } from "node:path";

import Database from "better-sqlite3";

import { ExaiError } from "../base/errors.js";

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

function isInMemory(path: string): boolean {
  return path === ":memory:" || path === "" || path.startsWith("file::memory:");
}

/**
 * Opens the database at `path` (creating its parent directory, mode 0o700, unless in memory), sets
 * WAL / busy_timeout 250 ms / synchronous NORMAL / foreign keys, and applies pending migrations.
 * @throws ExaiError CONFIG_INVALID when the file cannot be opened or migrated (e.g. not a database).
 */
export function openDatabase(path: string): Database.Database {
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
  return db;
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
