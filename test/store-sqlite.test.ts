import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";

import { ExaiError } from "../src/base/errors.js";
import { openMemoryStore, openSqliteStore, SQLITE_SCHEMA_VERSION } from "../src/store/sqlite.js";
import type { Store } from "../src/store/store.js";

const HOUR = 3_600_000;

describe("SQLite store", () => {
  let dir: string;
  let dbPath: string;
  const opened: Store[] = [];

  function open(): Store {
    const store = openSqliteStore({ path: dbPath });
    opened.push(store);
    return store;
  }

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "exai-store-"));
    // A nested directory checks that the parent is created.
    dbPath = join(dir, "data", "exai.db");
  });

  afterEach(async () => {
    for (const store of opened.splice(0)) await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("creates the parent directory with mode 0700 and uses WAL", async () => {
    const store = open();
    expect((await stat(join(dir, "data"))).mode & 0o777).toBe(0o700);
    await store.createThread({ toolName: "chat", ttlMs: HOUR });
    const raw = new Database(dbPath, { readonly: true });
    try {
      expect(raw.pragma("journal_mode", { simple: true })).toBe("wal");
    } finally {
      raw.close();
    }
  });

  it("creates, gets and appends turns to a thread", async () => {
    const store = open();
    const t0 = 1_700_000_000_000;
    const created = await store.createThread({ toolName: "chat", ttlMs: HOUR, now: t0 });
    expect(created.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(created).toMatchObject({ toolName: "chat", createdAt: t0, updatedAt: t0, expiresAt: t0 + HOUR });
    expect(created.turns).toEqual([]);
    expect(created.parentId).toBeUndefined();

    const after = await store.addTurns(
      created.id,
      [
        { role: "user", toolName: "chat", content: "question", files: ["/repo/a.ts"] },
        {
          role: "assistant",
          toolName: "chat",
          content: "answer",
          model: "glm-4.5",
          provider: "glm",
          data: { step: 1, findings: ["x"] },
        },
      ],
      { ttlMs: HOUR, maxTurns: 20, now: t0 + 1000 },
    );
    expect(after.turns).toHaveLength(2);
    expect(after.updatedAt).toBe(t0 + 1000);
    expect(after.expiresAt).toBe(t0 + 1000 + HOUR);

    const got = await store.getThread(created.id, t0 + 2000);
    expect(got?.turns).toEqual([
      {
        index: 0,
        role: "user",
        toolName: "chat",
        content: "question",
        files: ["/repo/a.ts"],
        createdAt: t0 + 1000,
      },
      {
        index: 1,
        role: "assistant",
        toolName: "chat",
        content: "answer",
        files: [],
        model: "glm-4.5",
        provider: "glm",
        data: { step: 1, findings: ["x"] },
        createdAt: t0 + 1000,
      },
    ]);

    const third = await store.addTurns(
      created.id,
      [{ role: "user", toolName: "codereview", content: "more" }],
      {
        ttlMs: HOUR,
        maxTurns: 20,
        now: t0 + 3000,
      },
    );
    expect(third.turns.map((t) => t.index)).toEqual([0, 1, 2]);
    expect(await store.getThread("no-such-thread")).toBeUndefined();
  });

  it("honours a given id and parentId, and refuses a live duplicate id", async () => {
    const store = open();
    const parent = await store.createThread({ toolName: "chat", ttlMs: HOUR });
    const child = await store.createThread({
      toolName: "chat",
      ttlMs: HOUR,
      id: "fixed-id",
      parentId: parent.id,
    });
    expect(child.id).toBe("fixed-id");
    expect((await store.getThread("fixed-id"))?.parentId).toBe(parent.id);
    await expect(store.createThread({ toolName: "chat", ttlMs: HOUR, id: "fixed-id" })).rejects.toMatchObject(
      {
        code: "INVALID_ARGUMENT",
      },
    );
  });

  it("expires threads after the TTL, refreshes it per turn, and purges", async () => {
    const store = open();
    const t0 = 1_000_000;
    const thread = await store.createThread({ toolName: "chat", ttlMs: 1000, now: t0 });
    expect(await store.getThread(thread.id, t0 + 999)).toBeDefined();
    await store.addTurns(thread.id, [{ role: "user", toolName: "chat", content: "hi" }], {
      ttlMs: 1000,
      maxTurns: 5,
      now: t0 + 900,
    });
    // Refreshed: alive past the original expiry.
    expect(await store.getThread(thread.id, t0 + 1500)).toBeDefined();
    expect(await store.getThread(thread.id, t0 + 1900)).toBeUndefined();
    await expect(
      store.addTurns(thread.id, [{ role: "user", toolName: "chat", content: "late" }], {
        ttlMs: 1000,
        maxTurns: 5,
        now: t0 + 2000,
      }),
    ).rejects.toMatchObject({ code: "INVALID_ARGUMENT", details: { field: "continuation_id" } });

    const other = await store.createThread({ toolName: "chat", ttlMs: 10 * HOUR, now: t0 });
    expect(await store.purgeExpired(t0 + 2000)).toBe(1);
    expect(await store.purgeExpired(t0 + 2000)).toBe(0);
    expect(await store.getThread(other.id, t0 + 2000)).toBeDefined();
  });

  it("refuses to exceed maxTurns with a message naming the limit and MAX_CONVERSATION_TURNS", async () => {
    const store = open();
    const thread = await store.createThread({ toolName: "chat", ttlMs: HOUR });
    const turn = { role: "user" as const, toolName: "chat", content: "x" };
    await store.addTurns(thread.id, [turn, turn, turn], { ttlMs: HOUR, maxTurns: 4 });
    const error: unknown = await store
      .addTurns(thread.id, [turn, turn], { ttlMs: HOUR, maxTurns: 4 })
      .catch((e: unknown) => e);
    expect(ExaiError.is(error)).toBe(true);
    const exai = error as ExaiError;
    expect(exai.code).toBe("INVALID_ARGUMENT");
    expect(exai.details.field).toBe("continuation_id");
    expect(exai.message).toContain("4");
    expect(exai.message).toContain("MAX_CONVERSATION_TURNS");
    expect(exai.message).toMatch(/new thread/i);
    // Atomic: nothing of the refused batch was stored; one more still fits.
    expect((await store.getThread(thread.id))?.turns).toHaveLength(3);
    expect((await store.addTurns(thread.id, [turn], { ttlMs: HOUR, maxTurns: 4 })).turns).toHaveLength(4);
  });

  it("keeps data across reopen and applies each migration once", async () => {
    const first = open();
    const thread = await first.createThread({ toolName: "chat", ttlMs: HOUR });
    await first.addTurns(thread.id, [{ role: "user", toolName: "chat", content: "persist me" }], {
      ttlMs: HOUR,
      maxTurns: 20,
    });
    await first.close();

    const readVersions = () => {
      const raw = new Database(dbPath, { readonly: true });
      try {
        return raw.prepare("SELECT version, applied_at FROM schema_version ORDER BY version").all();
      } finally {
        raw.close();
      }
    };
    const before = readVersions();
    expect(before).toHaveLength(SQLITE_SCHEMA_VERSION);

    const second = open();
    expect((await second.getThread(thread.id))?.turns[0]?.content).toBe("persist me");
    expect(readVersions()).toEqual(before);
  });

  it("puts, finds, lists and deletes files, unique per (sha256, provider)", async () => {
    const store = open();
    await store.putFile({ sha256: "aa", provider: "glm", providerFileId: "f1", filename: "a.ts", bytes: 10 });
    await store.putFile({
      sha256: "aa",
      provider: "kimi",
      providerFileId: "k1",
      filename: "a.ts",
      bytes: 10,
    });
    await store.putFile({ sha256: "bb", provider: "glm", providerFileId: "f2", filename: "b.ts", bytes: 20 });
    // Same (sha256, provider): replaced, not duplicated.
    await store.putFile({
      sha256: "aa",
      provider: "glm",
      providerFileId: "f3",
      filename: "a2.ts",
      bytes: 10,
    });

    expect(await store.findFile("aa", "glm")).toMatchObject({
      providerFileId: "f3",
      filename: "a2.ts",
      bytes: 10,
    });
    expect(await store.findFile("aa", "openai")).toBeUndefined();
    expect(await store.listFiles()).toHaveLength(3);
    const glm = await store.listFiles("glm");
    expect(glm.map((f) => f.providerFileId).sort()).toEqual(["f2", "f3"]);
    expect(typeof glm[0]?.createdAt).toBe("number");

    await store.deleteFile("glm", "f3");
    expect(await store.findFile("aa", "glm")).toBeUndefined();
    expect(await store.findFile("aa", "kimi")).toBeDefined();
    await store.deleteFile("glm", "unknown");
    expect(await store.listFiles()).toHaveLength(2);
  });

  it("returns recent tool calls newest first", async () => {
    const store = open();
    for (let i = 0; i < 5; i++) {
      await store.recordToolCall({
        at: 1000 + i,
        tool: `tool${i}`,
        traceId: `t${i}`,
        outcome: "ok",
        durationMs: i,
        extra: { n: i },
      });
    }
    const recent = await store.recentToolCalls(3);
    expect(recent.map((r) => r.tool)).toEqual(["tool4", "tool3", "tool2"]);
    expect(recent[0]).toEqual({
      at: 1004,
      tool: "tool4",
      traceId: "t4",
      outcome: "ok",
      durationMs: 4,
      extra: { n: 4 },
    });
    expect(await store.recentToolCalls(0)).toEqual([]);
  });

  it("lets two connections to the same file see each other's writes", async () => {
    const a = open();
    const b = open();
    const thread = await a.createThread({ toolName: "chat", ttlMs: HOUR });
    expect(await b.getThread(thread.id)).toBeDefined();
    await b.addTurns(thread.id, [{ role: "user", toolName: "chat", content: "from b" }], {
      ttlMs: HOUR,
      maxTurns: 20,
    });
    expect((await a.getThread(thread.id))?.turns.map((t) => t.content)).toEqual(["from b"]);
    await a.putFile({ sha256: "cc", provider: "glm", providerFileId: "f", filename: "c", bytes: 1 });
    expect(await b.findFile("cc", "glm")).toBeDefined();
  });

  it("rejects calls after close", async () => {
    const store = openMemoryStore();
    await store.close();
    await store.close();
    await expect(store.getThread("x")).rejects.toMatchObject({ code: "INTERNAL" });
  });

  it("works in memory", async () => {
    const store = openMemoryStore();
    try {
      const thread = await store.createThread({ toolName: "chat", ttlMs: HOUR });
      await store.addTurns(thread.id, [{ role: "user", toolName: "chat", content: "m" }], {
        ttlMs: HOUR,
        maxTurns: 2,
      });
      expect((await store.getThread(thread.id))?.turns).toHaveLength(1);
    } finally {
      await store.close();
    }
  });
});
