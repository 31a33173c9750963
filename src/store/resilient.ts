/**
 * The store a runtime uses: the SQLite store in EXAI_DATA_DIR, degrading to an in-memory one when
 * the directory cannot be used (read-only, missing and uncreatable, full disk) instead of failing
 * the server or the call. The fault is reported once (`onFault`, a CONFIG_INVALID error naming
 * EXAI_DATA_DIR, the path, the OS error and the fix); from then on writes go to memory (kept until
 * the process exits) while what the database already holds stays readable. Errors that are not
 * environment faults (an unknown continuation_id, a full thread) pass through unchanged.
 */
import { dirname } from "node:path";
import { ExaiError, environmentFault } from "../base/errors.js";
import { dataDirFault, ensureDataDir } from "../base/data-dir.js";
import { openMemoryStore, openSqliteStore } from "./sqlite.js";
import type { NewTurn, Store, StoredFile, Thread, ToolCallRecord } from "./store.js";

export interface OpenStoreOptions {
  /** Database file, e.g. `<EXAI_DATA_DIR>/exai.db`. */
  path: string;
  /** EXAI_DATA_DIR, named in the report. */
  dataDir: string;
  /** Called once, when the database cannot be opened or written. */
  onFault: (fault: ExaiError) => void;
}

const CONSEQUENCE =
  "conversation threads and upload records are kept in memory until exai restarts; tools keep working";

/**
 * True for errors of the environment (disk, permissions, file system), not of the caller or the code.
 * SQLITE_BUSY (another process holds the lock) is not one: it passes, and a retry can succeed.
 */
export function isEnvironmentFault(error: unknown): boolean {
  if (environmentFault(error) !== undefined) return true;
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" && /^(SQLITE_IOERR|EIO$)/.test(code);
}

/**
 * Opens the store at `options.path`; never throws for an unusable data directory (see the module
 * comment).
 */
export function openStore(options: OpenStoreOptions): Store {
  const dirFault = ensureDataDir(dirname(options.path), options.dataDir);
  if (dirFault) {
    const store = new ResilientStore(undefined, options);
    store.degrade(dirFault);
    return store;
  }
  try {
    return new ResilientStore(openSqliteStore({ path: options.path }), options);
  } catch (error) {
    const cause = (error as { cause?: unknown }).cause ?? error;
    const store = new ResilientStore(undefined, options);
    store.degrade(cause, "cannot open the conversation store");
    return store;
  }
}

class ResilientStore implements Store {
  private memory: Store | undefined;

  constructor(
    private readonly primary: Store | undefined,
    private readonly options: OpenStoreOptions,
  ) {}

  /** Switches to the in-memory store, reporting `error` the first time. */
  degrade(error: unknown, action = "cannot write the conversation store"): Store {
    if (!this.memory) {
      this.memory = openMemoryStore();
      this.options.onFault(
        ExaiError.is(error)
          ? new ExaiError(error.code, `${error.message}; ${CONSEQUENCE}`, {
              cause: error,
              details: error.details,
            })
          : dataDirFault(error, this.options.dataDir, `${action} ${this.options.path}`, CONSEQUENCE),
      );
    }
    return this.memory;
  }

  /** Runs a write on the database, or in memory once degraded (or when this write fails for the environment). */
  private async write<T>(op: (store: Store) => Promise<T>): Promise<T> {
    if (this.memory || !this.primary) return op(this.memory ?? this.degrade(new Error("no database")));
    try {
      return await op(this.primary);
    } catch (error) {
      if (!isEnvironmentFault(error)) throw error;
      return op(this.degrade(error));
    }
  }

  /** Reads the database, treating an environment fault as "nothing there". */
  private async readPrimary<T>(op: (store: Store) => Promise<T>, fallback: T): Promise<T> {
    if (!this.primary) return fallback;
    try {
      return await op(this.primary);
    } catch (error) {
      if (!isEnvironmentFault(error)) throw error;
      return fallback;
    }
  }

  createThread(input: Parameters<Store["createThread"]>[0]): Promise<Thread> {
    return this.write((store) => store.createThread(input));
  }

  async getThread(id: string, now?: number): Promise<Thread | undefined> {
    const inMemory = this.memory ? await this.memory.getThread(id, now) : undefined;
    return inMemory ?? this.readPrimary((store) => store.getThread(id, now), undefined);
  }

  async addTurns(
    id: string,
    turns: NewTurn[],
    options: { ttlMs: number; maxTurns: number; now?: number },
  ): Promise<Thread> {
    if (!this.memory && this.primary) {
      try {
        return await this.primary.addTurns(id, turns, options);
      } catch (error) {
        if (!isEnvironmentFault(error)) throw error;
        this.degrade(error);
      }
    }
    const memory = this.memory ?? this.degrade(new Error("no database"));
    if ((await memory.getThread(id, options.now)) === undefined) {
      // A thread the database holds but can no longer extend: continue it in memory.
      const stored = await this.readPrimary((store) => store.getThread(id, options.now), undefined);
      if (stored) {
        const now = options.now ?? Date.now();
        await memory.createThread({
          toolName: stored.toolName,
          ttlMs: Math.max(1, stored.expiresAt - now),
          id,
          ...(stored.parentId !== undefined ? { parentId: stored.parentId } : {}),
          now,
        });
        const copied: NewTurn[] = stored.turns.map((turn) => ({
          role: turn.role,
          toolName: turn.toolName,
          content: turn.content,
          files: turn.files,
          ...(turn.model !== undefined ? { model: turn.model } : {}),
          ...(turn.provider !== undefined ? { provider: turn.provider } : {}),
          ...(turn.data !== undefined ? { data: turn.data } : {}),
        }));
        if (copied.length > 0)
          await memory.addTurns(id, copied, { ttlMs: options.ttlMs, maxTurns: Number.MAX_SAFE_INTEGER, now });
      }
    }
    return memory.addTurns(id, turns, options);
  }

  putFile(file: Omit<StoredFile, "createdAt">): Promise<void> {
    return this.write((store) => store.putFile(file));
  }

  async findFile(sha256: string, provider: string): Promise<StoredFile | undefined> {
    const inMemory = this.memory ? await this.memory.findFile(sha256, provider) : undefined;
    return inMemory ?? this.readPrimary((store) => store.findFile(sha256, provider), undefined);
  }

  async listFiles(provider?: string): Promise<StoredFile[]> {
    const stored = await this.readPrimary((store) => store.listFiles(provider), []);
    if (!this.memory) return stored;
    const recent = await this.memory.listFiles(provider);
    const key = (file: StoredFile) => `${file.provider}\n${file.sha256}`;
    const replaced = new Set(recent.map(key));
    return [...stored.filter((file) => !replaced.has(key(file))), ...recent];
  }

  async deleteFile(provider: string, providerFileId: string): Promise<void> {
    await this.readPrimary((store) => store.deleteFile(provider, providerFileId), undefined);
    await this.memory?.deleteFile(provider, providerFileId);
  }

  recordToolCall(record: ToolCallRecord): Promise<void> {
    return this.write((store) => store.recordToolCall(record));
  }

  async recentToolCalls(limit: number): Promise<ToolCallRecord[]> {
    const stored = await this.readPrimary((store) => store.recentToolCalls(limit), []);
    if (!this.memory) return stored;
    const recent = await this.memory.recentToolCalls(limit);
    return [...recent, ...stored].sort((a, b) => b.at - a.at).slice(0, Math.max(0, limit));
  }

  async purgeExpired(now?: number): Promise<number> {
    const purged = await this.readPrimary((store) => store.purgeExpired(now), 0);
    return purged + ((await this.memory?.purgeExpired(now)) ?? 0);
  }

  async close(): Promise<void> {
    await this.primary?.close();
    await this.memory?.close();
  }
}
