/**
 * Uploaded provider files and the tool-call log in the SQLite store (SPEC §8): the `files` and
 * `tool_calls` rows and the statements over them.
 */
import type Database from "better-sqlite3";

import type { StoredFile } from "./store.js";

interface FileRow {
  sha256: string;
  provider: string;
  provider_file_id: string;
  filename: string;
  bytes: number;
  created_at: number;
}

/** The `StoredFile` of a `files` row. */
export function toStoredFile(row: FileRow): StoredFile {
  return {
    sha256: row.sha256,
    provider: row.provider,
    providerFileId: row.provider_file_id,
    filename: row.filename,
    bytes: row.bytes,
    createdAt: row.created_at,
  };
}

/** The file and tool-call statements, prepared once per connection. */
export function prepareFileStatements(db: Database.Database) {
  return {
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
