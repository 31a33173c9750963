/**
 * Faults are reported, never fatal (issue 8, build item 6): a full disk and a read-only data
 * directory under a real `exai stdio` process, and oversized stdin messages. The disk faults use
 * real tmpfs mounts (1 MiB, or read-only), which need root; without them those tests are skipped.
 */
import { execFileSync, spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { BoundedStdioServerTransport } from "../src/mcp/stdio-transport.js";
import { openStore } from "../src/store/resilient.js";
import type { ExaiError } from "../src/base/errors.js";
import { startFakeProvider, type FakeProvider } from "../src/testing/fake-provider.js";
import {
  CLI,
  connectStdioClient,
  fastEnv,
  providerEnv,
  structured,
  tempDir,
  type StdioClient,
  initializeRequest,
} from "./support/harness.js";

/** Mounts a tmpfs at a fresh directory; undefined when mounting is not permitted here. */
function mountTmpfs(options: string): string | undefined {
  const dir = mkdtempSync(join(tmpdir(), "exai-mnt-"));
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", options, "tmpfs", dir], { stdio: "ignore" });
    return dir;
  } catch {
    rmSync(dir, { recursive: true, force: true });
    return undefined;
  }
}

function unmount(dir: string | undefined): void {
  if (!dir) return;
  execFileSync("umount", ["-l", dir], { stdio: "ignore" });
  rmSync(dir, { recursive: true, force: true });
}

/** Fills the file system of `dir` until ENOSPC. */
function fill(dir: string): void {
  try {
    writeFileSync(join(dir, `filler-${Date.now()}`), Buffer.alloc(4 * 1024 * 1024, 1));
  } catch (error) {
    expect((error as NodeJS.ErrnoException).code).toBe("ENOSPC");
  }
}

/** Appends blank lines to `path` until the file system refuses (ENOSPC). */
function exhaust(path: string): void {
  for (let i = 0; i < 1000; i++) {
    try {
      appendFileSync(path, "\n".repeat(512));
    } catch (error) {
      expect((error as NodeJS.ErrnoException).code).toBe("ENOSPC");
      return;
    }
  }
  throw new Error(`${path} never filled up`);
}

const probe = mountTmpfs("size=64k");
const canMount = probe !== undefined;
unmount(probe);

let fake: FakeProvider;
let client: StdioClient | undefined;

beforeAll(async () => {
  fake = await startFakeProvider();
});
afterAll(async () => {
  await fake.close();
});
afterEach(async () => {
  await client?.close();
  client = undefined;
  fake.reset();
});

/**
 * Tool budgets with room for a loaded machine: these tests are about faults, not deadlines, and the
 * first continued chat builds the server's tokenizer (≈ 0.25 s idle, seconds under load).
 */
const FAULT_BUDGETS = { SIMPLE_TOOL_TIMEOUT_SECS: "10", WORKFLOW_TOOL_TIMEOUT_SECS: "12" };

const chat = async (c: StdioClient, args: Record<string, unknown>) =>
  structured(await c.client.callTool({ name: "chat", arguments: { model: "glm-4.5-flash", ...args } }));

describe.skipIf(!canMount)("a full disk (1 MiB tmpfs; skipped where mount is not permitted)", () => {
  let mnt: string | undefined;
  beforeAll(() => {
    mnt = mountTmpfs("size=1m");
  });
  afterAll(() => unmount(mnt));

  it("filling up while serving: calls keep succeeding, continuation still works, ENOSPC is reported once per file", async () => {
    const dataDir = join(mnt as string, "data");
    client = await connectStdioClient(
      fastEnv({ ...providerEnv(fake), ...FAULT_BUDGETS, EXAI_DATA_DIR: dataDir, EXAI_LOG_LEVEL: "info" }),
    );
    const first = await chat(client, { prompt: "before" });
    expect(first.status).toBe("success");
    fill(mnt as string);
    // Also use up the slack in the last page of each log file: their next write fails with ENOSPC.
    for (const log of ["exai.log", "toolcalls.jsonl"]) exhaust(join(dataDir, "logs", log));
    // Lines big enough that neither the log buffers nor SQLite's free pages can absorb them.
    const big = "y".repeat(20_000);
    let continuation = String(first.continuation_id);
    for (let i = 0; i < 3; i++) {
      const next = await chat(client, { prompt: `${big} ${i}`, continuation_id: continuation });
      expect(next, JSON.stringify(next)).toMatchObject({ status: "success" });
      continuation = String(next.continuation_id);
    }
    const version = structured(await client.client.callTool({ name: "version", arguments: {} }));
    expect(version.status).toBe("success");
    // The last turn of the thread is readable: the conversation continued despite the full disk.
    const last = JSON.stringify(fake.chatRequests().at(-1)?.body);
    expect(last).toContain("before"); // the turn stored in SQLite before the disk filled up
    expect(last).toContain(`${"y".repeat(100)} 1`); // a turn kept in memory after it did

    const stderr = client.stderr();
    expect(stderr).toMatch(/EXAI_DATA_DIR=\S+: cannot write the (log file|tool-call log|conversation store)/);
    expect(stderr).toMatch(/ENOSPC|SQLITE_FULL/);
    expect(stderr).not.toMatch(/This is a bug/);
    // It still exits by itself when the client leaves: the SDK client would SIGTERM it after 2 s
    // (pino's exit flush of a failed log file used to retry forever).
    const closing = performance.now();
    await client.close();
    client = undefined;
    expect(performance.now() - closing).toBeLessThan(1900);
    for (const what of ["the log file", "the tool-call log", "the conversation store"]) {
      expect(stderr.split(`cannot write ${what} `).length - 1).toBe(1);
    }
  });
});

describe.skipIf(!canMount)(
  "a read-only data directory (read-only tmpfs; skipped where mount is not permitted)",
  () => {
    let mnt: string | undefined;
    beforeAll(() => {
      mnt = mountTmpfs("ro,size=64k");
    });
    afterAll(() => unmount(mnt));

    it("the server starts, tools answer, and stderr names EXAI_DATA_DIR, EROFS and the fix", async () => {
      const dataDir = join(mnt as string, "exai");
      client = await connectStdioClient(
        fastEnv({ ...providerEnv(fake), ...FAULT_BUDGETS, EXAI_DATA_DIR: dataDir }),
      );
      const answer = await chat(client, { prompt: "hi" });
      expect(answer.status).toBe("success");
      const again = await chat(client, { prompt: "and again", continuation_id: answer.continuation_id });
      expect(again.status).toBe("success");
      const listed = structured(await client.client.callTool({ name: "listmodels", arguments: {} }));
      expect(listed.status).toBe("success");
      const stderr = client.stderr();
      expect(stderr).toContain(`EXAI_DATA_DIR=${dataDir}`);
      expect(stderr).toContain("EROFS");
      expect(stderr).toMatch(/point EXAI_DATA_DIR at a writable directory/);
      expect(stderr).not.toMatch(/This is a bug/);
    });
  },
);

describe("the resilient store", () => {
  it("an uncreatable database path: writes go to memory, reported once naming EXAI_DATA_DIR and the OS error", async () => {
    const dir = tempDir();
    try {
      // A file where the data directory should be: ENOTDIR for everything below it, also as root.
      writeFileSync(join(dir.path, "not-a-dir"), "");
      const faults: ExaiError[] = [];
      const dataDir = join(dir.path, "not-a-dir");
      const store = openStore({ path: join(dataDir, "exai.db"), dataDir, onFault: (f) => faults.push(f) });
      const thread = await store.createThread({ toolName: "chat", ttlMs: 60_000 });
      await store.addTurns(thread.id, [{ role: "user", toolName: "chat", content: "hello" }], {
        ttlMs: 60_000,
        maxTurns: 10,
      });
      expect((await store.getThread(thread.id))?.turns.map((t) => t.content)).toEqual(["hello"]);
      await expect(
        store.addTurns("unknown", [{ role: "user", toolName: "chat", content: "x" }], {
          ttlMs: 1,
          maxTurns: 2,
        }),
      ).rejects.toMatchObject({ code: "INVALID_ARGUMENT" });
      expect(faults).toHaveLength(1);
      expect(faults[0]?.code).toBe("CONFIG_INVALID");
      expect(faults[0]?.message).toContain(`EXAI_DATA_DIR=${dataDir}`);
      expect(faults[0]?.message).toMatch(/ENOTDIR|SQLITE_CANTOPEN/);
      await store.close();
    } finally {
      dir.cleanup();
    }
  });
});

/** Spawns `exai stdio` and speaks raw newline-delimited JSON-RPC to it. */
function rawStdio(env: Record<string, string>): {
  child: ChildProcessWithoutNullStreams;
  send: (text: string) => void;
  response: (id: number) => Promise<Record<string, unknown>>;
  exit: Promise<number | null>;
  stderr: () => string;
} {
  const child = spawn(process.execPath, [CLI, "stdio"], {
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", EXAI_ENV_FILE: "off", ...env },
  });
  let out = "";
  let err = "";
  const waiters: Array<() => void> = [];
  child.stdout.on("data", (chunk: Buffer) => {
    out += chunk.toString();
    for (const wake of waiters.splice(0)) wake();
  });
  child.stderr.on("data", (chunk: Buffer) => (err += chunk.toString()));
  // "close", not "exit": stdout and stderr are read to their end (a line on stderr may arrive after
  // the answer on stdout).
  const exit = new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)));
  const find = (id: number) =>
    out
      .split("\n")
      .filter((line) => line.trim() !== "")
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .find((message) => message.id === id);
  return {
    child,
    send: (text) => child.stdin.write(`${text}\n`),
    async response(id) {
      for (;;) {
        const found = find(id);
        if (found) return found;
        const ended = await Promise.race([
          new Promise<false>((resolve) => waiters.push(() => resolve(false))),
          exit.then(() => true),
        ]);
        if (ended && !find(id)) throw new Error(`exited without answering ${id}; stderr: ${err}`);
      }
    },
    exit,
    stderr: () => err,
  };
}

const initialize = JSON.stringify(initializeRequest("t"));
const tenMiBCall = (id: number) =>
  JSON.stringify({
    jsonrpc: "2.0",
    id,
    method: "tools/call",
    params: { name: "chat", arguments: { prompt: "x".repeat(10 * 1024 * 1024) } },
  });

describe("an oversized stdin message", () => {
  // One process for both EXAI_MAX_MESSAGE_MB=1 cases: the first leaves the server serving, the second ends it.
  it("over EXAI_MAX_MESSAGE_MB: a JSON-RPC error for that request, and the server keeps serving; then an oversized line whose id cannot be read: a line on stderr and exit code 1, not 0", async () => {
    const data = tempDir();
    const server = rawStdio({ EXAI_DATA_DIR: data.path, EXAI_MAX_MESSAGE_MB: "1", EXAI_LOG_LEVEL: "warn" });
    try {
      server.send(initialize);
      await server.response(1);
      server.send(tenMiBCall(2));
      server.send(JSON.stringify({ jsonrpc: "2.0", id: 3, method: "tools/list" }));
      const rejected = await server.response(2);
      expect(rejected.error).toMatchObject({ code: -32600, data: { variable: "EXAI_MAX_MESSAGE_MB" } });
      expect(String((rejected.error as { message: string }).message)).toMatch(
        /exceeds EXAI_MAX_MESSAGE_MB \(1 MiB\)/,
      );
      expect((await server.response(3)).result).toHaveProperty("tools");
      server.send("z".repeat(2 * 1024 * 1024));
      expect(await server.exit).toBe(1);
      // A line for the answered request, then one for the line that cannot be answered.
      const lines = server.stderr().split("\n");
      expect(lines.filter((line) => line.includes("exceeds EXAI_MAX_MESSAGE_MB"))).toHaveLength(2);
      expect(
        lines.filter((line) => /exceeds EXAI_MAX_MESSAGE_MB.*cannot be answered/.test(line)),
      ).toHaveLength(1);
    } finally {
      server.child.stdin.end();
      await server.exit;
      data.cleanup();
    }
  });

  it("10 MiB under the default limit is answered (the SDK's 10 MiB read buffer made it exit 0 silently)", async () => {
    const data = tempDir();
    const server = rawStdio({ EXAI_DATA_DIR: data.path, EXAI_LOG_LEVEL: "warn" });
    try {
      server.send(initialize);
      await server.response(1);
      server.send(tenMiBCall(2));
      const answered = await server.response(2);
      expect(answered.result ?? answered.error).toBeDefined();
    } finally {
      server.child.stdin.end();
      await server.exit;
      data.cleanup();
    }
  });
});

describe("BoundedStdioServerTransport", () => {
  async function feed(lines: string[], limit: number) {
    const stdin = new PassThrough();
    const stdout = new PassThrough();
    const transport = new BoundedStdioServerTransport({ maxMessageBytes: limit, stdin, stdout });
    const received: unknown[] = [];
    transport.onmessage = (message) => received.push(message);
    let written = "";
    stdout.on("data", (chunk: Buffer) => (written += chunk.toString()));
    await transport.start();
    for (const line of lines) {
      // Split every line in odd chunks to exercise the streaming path.
      for (let i = 0; i < line.length; i += 7777) stdin.write(line.slice(i, i + 7777));
      stdin.write("\n");
    }
    await new Promise((resolve) => setImmediate(resolve));
    await transport.close();
    return {
      received,
      written: written
        .split("\n")
        .filter(Boolean)
        .map((l) => JSON.parse(l) as unknown),
      transport,
    };
  }

  it("recovers the id wherever it is (first, last, a string with escapes) and drops oversized notifications", async () => {
    const pad = "p".repeat(5000);
    const { received, written, transport } = await feed(
      [
        JSON.stringify({ jsonrpc: "2.0", id: 7, method: "a", params: { pad } }),
        JSON.stringify({
          jsonrpc: "2.0",
          method: "b",
          params: { pad, id: 99, nested: { id: 98 } },
          id: 'k"1',
        }),
        JSON.stringify({ jsonrpc: "2.0", method: "notifications/c", params: { pad, id: 5 } }),
        JSON.stringify({ jsonrpc: "2.0", id: 8, method: "small" }),
      ],
      1000,
    );
    expect(written.map((m) => (m as { id: unknown }).id)).toEqual([7, 'k"1']);
    expect(received).toEqual([{ jsonrpc: "2.0", id: 8, method: "small" }]);
    expect(transport.failure).toBeUndefined();
  });
});
