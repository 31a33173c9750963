/**
 * Tool arguments nested deeper than EXAI_MAX_ARGUMENT_DEPTH are refused with INVALID_ARGUMENT
 * before any schema walks them (issue 8, Build 5). Before the check, a prompt nested 100,000
 * levels deep overflowed the stack in the argument validation: INTERNAL "Maximum call stack size
 * exceeded … This is a bug". In process (the executor every transport uses) and over real stdio.
 */
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { afterEach, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { checkArgumentDepth } from "../src/runtime/arguments.js";
import { stableJson } from "../src/base/stable-json.js";
import { startFakeProvider, type FakeProvider } from "../src/testing/fake-provider.js";
import {
  CLI,
  fastEnv,
  REPO_ROOT,
  startTestRuntime,
  tempDir,
  type TestRuntime,
  initializeRequest,
} from "./support/harness.js";
import { startInProcessDaemon } from "./support/daemon.js";

const DEPTH = 100_000;

/** `[[[…"x"…]]]` nested `levels` deep, built without recursion. */
function deepArray(levels: number): unknown {
  let value: unknown = "x";
  for (let i = 0; i < levels; i++) value = [value];
  return value;
}

/** The JSON text of deepArray(levels), built as text (JSON.stringify would overflow the stack). */
function deepArrayJson(levels: number): string {
  return `${"[".repeat(levels)}"x"${"]".repeat(levels)}`;
}

describe("checkArgumentDepth", () => {
  it("counts the arguments object as level 1 and refuses one level past the limit, naming the field and the variable", () => {
    expect(() => checkArgumentDepth({ a: { b: { c: "d" } } }, 3)).not.toThrow();
    expect(() => checkArgumentDepth({ prompt: "x", files: ["a", "b"] }, 2)).not.toThrow();
    let caught: unknown;
    try {
      checkArgumentDepth({ prompt: "x", nested: { b: { c: {} } } }, 3);
    } catch (error) {
      caught = error;
    }
    expect(caught).toMatchObject({
      code: "INVALID_ARGUMENT",
      details: { field: "nested", limit: 3, variable: "EXAI_MAX_ARGUMENT_DEPTH" },
    });
    expect((caught as Error).message).toMatch(/nested more than 3 levels deep.*EXAI_MAX_ARGUMENT_DEPTH/);
  });

  it("walks 100,000 levels without overflowing the stack", () => {
    expect(() => checkArgumentDepth({ prompt: deepArray(DEPTH) }, 32)).toThrow(/more than 32 levels/);
    let object: unknown = {};
    for (let i = 0; i < DEPTH; i++) object = { a: object };
    expect(() => checkArgumentDepth(object, 1000)).toThrow(/more than 1000 levels/);
  });
});

describe("stableJson (call keys, daemon request fingerprints)", () => {
  it("sorts keys, drops undefined members and matches JSON otherwise", () => {
    const value = { b: 1, a: [1, { d: undefined, c: "x\n" }, [], {}], e: null, f: [undefined] };
    expect(stableJson(value)).toBe('{"a":[1,{"c":"x\\n"},[],{}],"b":1,"e":null,"f":[null]}');
    expect(JSON.parse(stableJson(value))).toEqual(JSON.parse(JSON.stringify(value)));
    expect(stableJson("s")).toBe('"s"');
    expect(stableJson(undefined)).toBe("null");
  });

  it("serialises 100,000 levels without overflowing the stack (the daemon fingerprints frames before the executor)", () => {
    expect(stableJson({ prompt: deepArray(DEPTH) })).toBe(`{"prompt":${deepArrayJson(DEPTH)}}`);
  });
});

describe("deep arguments through the executor", () => {
  let harness: TestRuntime | undefined;
  afterEach(async () => {
    await harness?.close();
    harness = undefined;
  });

  it("a prompt nested 100,000 levels deep is INVALID_ARGUMENT naming the limit, not INTERNAL", async () => {
    harness = await startTestRuntime();
    const outcome = await harness.runtime.executor.call({
      tool: "chat",
      arguments: { prompt: deepArray(DEPTH), model: "glm-4.5-flash" },
    });
    expect(outcome.error?.code).toBe("INVALID_ARGUMENT");
    expect(outcome.error?.message).toContain("prompt: arguments are nested more than 32 levels deep");
    expect(outcome.error?.message).toContain("EXAI_MAX_ARGUMENT_DEPTH");
    expect(outcome.error?.message).not.toMatch(/bug|call stack/i);
    // The provider was never asked.
    expect(harness.fake.chatRequests()).toHaveLength(0);
  });

  it("EXAI_MAX_ARGUMENT_DEPTH sets the limit, also for fields the schema would strip", async () => {
    harness = await startTestRuntime({ EXAI_MAX_ARGUMENT_DEPTH: "4" });
    const ok = await harness.runtime.executor.call({
      tool: "chat",
      arguments: { prompt: "hi", model: "glm-4.5-flash", images: [] },
    });
    expect(ok.ok).toBe(true);
    const refused = await harness.runtime.executor.call({
      tool: "chat",
      arguments: { prompt: "hi", model: "glm-4.5-flash", unknown_field: [[[[1]]]] },
    });
    expect(refused.error?.code).toBe("INVALID_ARGUMENT");
    expect(refused.error?.message).toContain("unknown_field: arguments are nested more than 4 levels deep");
  });
});

describe("deep arguments over stdio", () => {
  let child: ChildProcessWithoutNullStreams | undefined;
  let fake: FakeProvider | undefined;
  let data: { path: string; cleanup: () => void } | undefined;
  afterEach(async () => {
    if (child && child.exitCode === null) {
      const exited = new Promise((resolve) => child?.once("exit", resolve));
      child.kill("SIGTERM");
      await exited;
    }
    child = undefined;
    await fake?.close();
    data?.cleanup();
  });

  // HOME is the temporary data dir: no user configuration file is read.
  it("`exai stdio` answers a tools/call whose prompt is nested 100,000 levels deep with INVALID_ARGUMENT and keeps serving", async () => {
    fake = await startFakeProvider();
    data = tempDir("exai-deep-");
    const env = fastEnv({
      GLM_API_KEY: "test-glm-key",
      GLM_API_URL: fake.url,
      EXAI_DATA_DIR: data.path,
    });
    child = spawn(process.execPath, [CLI, "stdio"], {
      cwd: REPO_ROOT,
      env: Object.fromEntries(
        Object.entries({ PATH: process.env.PATH, HOME: data.path, ...env }).filter(
          (entry): entry is [string, string] => entry[1] !== undefined,
        ),
      ),
    });
    const responses = new Map<number, Record<string, unknown>>();
    const waiters = new Map<number, (message: Record<string, unknown>) => void>();
    let buffer = "";
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    child.stdout.on("data", (chunk: Buffer) => {
      buffer += chunk.toString();
      for (let newline = buffer.indexOf("\n"); newline >= 0; newline = buffer.indexOf("\n")) {
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + 1);
        if (line.trim() === "") continue;
        const message = JSON.parse(line) as Record<string, unknown>;
        if (typeof message.id === "number") {
          responses.set(message.id, message);
          waiters.get(message.id)?.(message);
        }
      }
    });
    const request = (id: number, text: string) => {
      child?.stdin.write(`${text}\n`);
      return new Promise<Record<string, unknown>>((resolve, reject) => {
        const known = responses.get(id);
        if (known) return resolve(known);
        const timer = setTimeout(() => reject(new Error(`no response ${id}; stderr: ${stderr}`)), 15_000);
        child?.once("exit", (code) => {
          clearTimeout(timer);
          reject(new Error(`exai stdio exited (${code}) before response ${id}; stderr: ${stderr}`));
        });
        waiters.set(id, (message) => {
          clearTimeout(timer);
          resolve(message);
        });
      });
    };
    const init = await request(1, JSON.stringify(initializeRequest("deep")));
    expect(init.result).toBeDefined();
    child.stdin.write(`${JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" })}\n`);
    const deep = await request(
      2,
      `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"chat","arguments":{"model":"glm-4.5-flash","prompt":${deepArrayJson(DEPTH)}}}}`,
    );
    const result = deep.result as { isError?: boolean; structuredContent?: Record<string, unknown> };
    expect(result.isError).toBe(true);
    expect(result.structuredContent?.code).toBe("INVALID_ARGUMENT");
    expect(String(result.structuredContent?.message)).toContain("EXAI_MAX_ARGUMENT_DEPTH");
    // Still serving: a normal call right after succeeds.
    const next = await request(
      3,
      JSON.stringify({
        jsonrpc: "2.0",
        id: 3,
        method: "tools/call",
        params: { name: "chat", arguments: { model: "glm-4.5-flash", prompt: "still there?" } },
      }),
    );
    expect((next.result as { isError?: boolean }).isError).toBeUndefined();
    expect(child.exitCode).toBeNull();
  });
});

describe("deep arguments over the daemon's WebSocket", () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  it("a call_tool frame whose prompt is nested 100,000 levels deep gets INVALID_ARGUMENT, and the connection keeps serving", async () => {
    const { daemon } = await startInProcessDaemon(cleanups, { prefix: "exai-deep-daemon-" });
    const ws = new WebSocket(`ws+unix://${daemon.socketPath}:/`);
    cleanups.push(() => ws.terminate());
    const frames: Array<Record<string, unknown>> = [];
    const waiters = new Set<() => void>();
    ws.on("message", (raw) => {
      frames.push(JSON.parse(String(raw)) as Record<string, unknown>);
      for (const waiter of waiters) waiter();
    });
    const waitFor = (test: (frame: Record<string, unknown>) => boolean) =>
      new Promise<Record<string, unknown>>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`no such frame; got ${JSON.stringify(frames)}`)),
          10_000,
        );
        const check = () => {
          const found = frames.find(test);
          if (found) {
            clearTimeout(timer);
            waiters.delete(check);
            resolve(found);
          }
        };
        waiters.add(check);
        check();
      });
    await new Promise<void>((resolve, reject) => ws.once("open", () => resolve()).once("error", reject));
    ws.send(JSON.stringify({ op: "hello", client: { name: "deep", version: "1" } }));
    await waitFor((frame) => frame.op === "hello_ack");
    ws.send(
      `{"op":"call_tool","request_id":"deep-1","name":"chat","arguments":{"model":"glm-4.5-flash","prompt":${deepArrayJson(DEPTH)}}}`,
    );
    const result = await waitFor((frame) => frame.op === "call_tool_res" && frame.request_id === "deep-1");
    expect(result.error).toMatchObject({ code: "INVALID_ARGUMENT" });
    expect(String((result.error as { message?: unknown }).message)).toContain("EXAI_MAX_ARGUMENT_DEPTH");
    ws.send(
      JSON.stringify({
        op: "call_tool",
        request_id: "after-1",
        name: "chat",
        arguments: { model: "glm-4.5-flash", prompt: "still there?" },
      }),
    );
    const after = await waitFor((frame) => frame.op === "call_tool_res" && frame.request_id === "after-1");
    expect(after.error).toBeUndefined();
  });
});
