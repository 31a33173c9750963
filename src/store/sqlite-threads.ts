/**
 * Threads and their turns in the SQLite store (SPEC §8): the `conversations` and `messages` rows,
 * the statements over them, and the transactions that read and write a thread consistently.
 */
import type Database from "better-sqlite3";

import { invalidArgument } from "../base/errors.js";
import type { NewTurn, Thread, Turn } from "./store.js";

/** A row of `conversations`. */
export interface ConversationRow {
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

/** @throws ExaiError INVALID_ARGUMENT (field ttlMs) unless `ttlMs` is a positive finite number. */
export function checkTtl(ttlMs: number): void {
  if (!Number.isFinite(ttlMs) || ttlMs <= 0) {
    throw invalidArgument("ttlMs", `must be a positive number of milliseconds, got ${ttlMs}.`);
  }
}

/** @throws ExaiError INVALID_ARGUMENT (field `turns[i].…`) when turn `i` has a bad role, content or files. */
export function checkTurn(turn: NewTurn, i: number): void {
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

/** The thread and turn statements, prepared once per connection. */
export function prepareThreadStatements(db: Database.Database) {
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
  };
}

/** The statements `prepareThreadStatements` returns. */
export type ThreadStatements = ReturnType<typeof prepareThreadStatements>;

/** The thread transactions of one connection (run them `.immediate` or `.deferred`). */
export interface ThreadTransactions {
  getThread: Database.Transaction<(id: string, now: number) => Thread | undefined>;
  createThread: Database.Transaction<(row: ConversationRow) => Thread>;
  addTurns: Database.Transaction<
    (id: string, turns: NewTurn[], ttlMs: number, maxTurns: number, now: number) => Thread
  >;
}

/**
 * The thread transactions over `stmt`: reading a live thread, creating one (replacing an expired
 * thread of the same id), and appending turns within the turn limit while extending the TTL.
 * The write transactions throw ExaiError INVALID_ARGUMENT (field continuation_id) for an existing,
 * missing or expired thread, or one that would exceed `maxTurns`.
 */
export function threadTransactions(db: Database.Database, stmt: ThreadStatements): ThreadTransactions {
  const getThread = db.transaction((id: string, now: number): Thread | undefined => {
    const row = stmt.getConversation.get(id);
    if (row === undefined || row.expires_at <= now) return undefined;
    return toThread(stmt, row);
  });

  const createThread = db.transaction((row: ConversationRow): Thread => {
    stmt.deleteExpiredConversation.run(row.id, row.created_at);
    if (stmt.getConversation.get(row.id) !== undefined) {
      throw invalidArgument(
        "continuation_id",
        `thread ${row.id} already exists. Omit continuation_id to start a new thread with a fresh id.`,
      );
    }
    stmt.insertConversation.run(
      row.id,
      row.tool_name,
      row.parent_id,
      row.created_at,
      row.updated_at,
      row.expires_at,
    );
    return toThread(stmt, row);
  });

  const addTurns = db.transaction(
    (id: string, turns: NewTurn[], ttlMs: number, maxTurns: number, now: number): Thread => {
      const row = stmt.getConversation.get(id);
      if (row === undefined || row.expires_at <= now) {
        throw invalidArgument(
          "continuation_id",
          `thread ${id} was not found or has expired (threads expire after CONVERSATION_TIMEOUT_HOURS ` +
            `without a new turn). Start a new thread by omitting continuation_id.`,
        );
      }
      const existing = stmt.countMessages.get(id)?.n ?? 0;
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
        stmt.insertMessage.run(
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
        for (const path of files) stmt.insertConversationFile.run(id, path);
      });
      stmt.touchConversation.run(now, now + ttlMs, id);
      return toThread(stmt, { ...row, updated_at: now, expires_at: now + ttlMs });
    },
  );

  return { getThread, createThread, addTurns };
}

function toThread(stmt: ThreadStatements, row: ConversationRow): Thread {
  const thread: Thread = {
    id: row.id,
    toolName: row.tool_name,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    expiresAt: row.expires_at,
    turns: stmt.getMessages.all(row.id).map(toTurn),
  };
  if (row.parent_id !== null) thread.parentId = row.parent_id;
  return thread;
}
