/**
 * Session ids stay private and environment faults are not reported as bugs (issue 8, Build 3 and
 * 6). Before: `status` listed every session id with calls in flight and `toolcall_log_tail`
 * returned every call's session — the one credential that resumes and cancels a session; a full
 * disk or read-only data directory surfaced as "INTERNAL … This is a bug".
 */
import { existsSync } from "node:fs";
import { mkdir, readFile, symlink } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { environmentFault, toExaiError } from "../src/base/errors.js";
import { startTestRuntime, tempDir, type TestRuntime } from "./support/harness.js";

const VICTIM = "victim-session-5f0c2a9e";

let harness: TestRuntime | undefined;
afterEach(async () => {
  await harness?.close();
  harness = undefined;
});

async function waitForLogLines(path: string, count: number): Promise<void> {
  const until = performance.now() + 3000;
  for (;;) {
    const text = await readFile(path, "utf8").catch(() => "");
    if (text.split("\n").filter((line) => line.trim() !== "").length >= count) return;
    if (performance.now() > until) throw new Error(`fewer than ${count} lines in ${path}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe("session ids do not leak through tools", () => {
  it("status shows session counts, not the ids of sessions with calls in flight", async () => {
    harness = await startTestRuntime();
    harness.fake.enqueue({ delayMs: 800, reply: { content: "slow" } });
    const executor = harness.runtime.executor;
    const slow = executor.call({
      tool: "chat",
      arguments: { prompt: "slow one", model: "glm-4.5-flash" },
      sessionId: VICTIM,
    });
    await harness.fake.waitForRequests(1);
    const status = await executor.call({ tool: "status", arguments: {}, sessionId: "attacker" });
    expect(status.ok).toBe(true);
    const text = JSON.stringify(status.result);
    expect(text).not.toContain(VICTIM);
    const admission = status.result?.admission as Record<string, Record<string, unknown>>;
    // The victim's call and the status call itself.
    expect(admission.session).toMatchObject({
      sessions_with_calls: 2,
      inflight: 2,
      cap_per_session: harness.runtime.config.admission.session,
    });
    expect((await slow).ok).toBe(true);
  });

  it("toolcall_log_tail returns the entries without any session id (the log file keeps them)", async () => {
    harness = await startTestRuntime();
    const executor = harness.runtime.executor;
    await executor.call({ tool: "version", arguments: {}, sessionId: VICTIM });
    await executor.call({ tool: "version", arguments: {}, sessionId: VICTIM });
    const path = harness.runtime.services.toolCallLogPath;
    await waitForLogLines(path, 2);
    expect(await readFile(path, "utf8")).toContain(VICTIM);
    const tail = await executor.call({ tool: "toolcall_log_tail", arguments: {}, sessionId: "attacker" });
    expect(tail.ok).toBe(true);
    expect(tail.result?.count).toBe(2);
    expect(JSON.stringify(tail.result)).not.toContain(VICTIM);
    for (const entry of tail.result?.entries as Array<Record<string, unknown>>) {
      expect(entry).not.toHaveProperty("session");
      expect(entry.tool).toBe("version");
    }
  });
});

/** An errno error as node:fs raises it. */
function errno(code: string, syscall: string, path: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: ${syscall} '${path}'`), { code, syscall, path });
}

describe("environment faults are named, not called bugs", () => {
  it.each([
    ["ENOSPC", /no space left.*free disk space/],
    ["EROFS", /read-only.*EXAI_DATA_DIR/],
    ["EACCES", /permission denied.*EXAI_DATA_DIR/],
    ["EPERM", /not permitted.*EXAI_DATA_DIR/],
    ["ENOTDIR", /not a directory.*EXAI_DATA_DIR/],
    ["EMFILE", /too many open files.*ulimit -n/],
    ["ENFILE", /too many open files on the system/],
  ])("%s → a message naming the OS error, the path and the fix", (code, pattern) => {
    const failure = toExaiError(errno(code, "open", "/data/exai/exai.db"), "chat");
    expect(failure.message).not.toMatch(/bug/i);
    expect(failure.message).toContain(code);
    expect(failure.message).toContain("/data/exai/exai.db");
    expect(failure.message).toMatch(pattern);
    expect(failure.details).toMatchObject({ os_error: code, environment: true });
  });

  it.each([
    ["SQLITE_FULL", /full.*free disk space/],
    ["SQLITE_READONLY", /read-only.*EXAI_DATA_DIR/],
    ["SQLITE_READONLY_DBMOVED", /read-only.*EXAI_DATA_DIR/],
    ["SQLITE_CANTOPEN", /cannot be opened.*EXAI_DATA_DIR/],
  ])("SQLite %s → named, with the fix", (code, pattern) => {
    const failure = toExaiError(Object.assign(new Error("database or disk is full"), { code }), "chat");
    expect(failure.message).not.toMatch(/bug/i);
    expect(failure.message).toContain(code);
    expect(failure.message).toMatch(pattern);
  });

  it("other failures stay INTERNAL bugs; non-errno codes are not mistaken for faults", () => {
    expect(toExaiError(new TypeError("x is undefined")).message).toMatch(/This is a bug/);
    expect(environmentFault(Object.assign(new Error("x"), { code: "ERR_INVALID_ARG_TYPE" }))).toBeUndefined();
    expect(environmentFault("ENOSPC")).toBeUndefined();
  });

  it.runIf(existsSync("/dev/full"))(
    "a tool-call log on a full device (ENOSPC) does not stop the server: calls keep being answered",
    async () => {
      const data = tempDir("exai-full-");
      try {
        // The JSONL log is /dev/full: every write to it fails with ENOSPC.
        await mkdir(join(data.path, "logs"), { recursive: true });
        await symlink("/dev/full", join(data.path, "logs", "toolcalls.jsonl"));
        harness = await startTestRuntime({ EXAI_DATA_DIR: data.path });
        for (let i = 0; i < 5; i++) {
          const outcome = await harness.runtime.executor.call({ tool: "version", arguments: {} });
          expect(outcome.ok).toBe(true);
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
        const chat = await harness.runtime.executor.call({
          tool: "chat",
          arguments: { prompt: "still serving", model: "glm-4.5-flash" },
        });
        expect(chat.ok).toBe(true);
        await harness.close();
        harness = undefined;
      } finally {
        data.cleanup();
      }
    },
  );
});
