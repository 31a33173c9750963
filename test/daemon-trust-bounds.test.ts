/**
 * Send backpressure of the daemon, with a real `exai daemon` process: clients that send requests
 * and never read are disconnected with close 4008 once their unread backlog passes
 * EXAI_WS_MAX_BACKLOG_MB, and the daemon's RSS stays bounded (it grew by gigabytes before).
 */
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import type { Socket } from "node:net";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { CLOSE_CODES } from "../src/mcp/frames.js";
import { startFakeProvider } from "../src/testing/fake-provider.js";
import { freePort, health, runCleanups, startDaemon, type Cleanup } from "./support/daemon.js";
import { CLI, fastEnv, providerEnv, REPO_ROOT, tempDir, initializeRequest } from "./support/harness.js";

const cleanups: Cleanup[] = [];
afterEach(() => runCleanups(cleanups));

/** Resident set size of process `pid`, MiB (Linux /proc). */
function rssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = Number(/VmRSS:\s+(\d+)\s+kB/.exec(status)?.[1] ?? 0);
  return kb / 1024;
}

describe("daemon send backpressure", () => {
  it("disconnects clients that never read with 4008, and its RSS stays under 200 MB", async () => {
    const fake = await startFakeProvider();
    const data = tempDir("exai-backlog-");
    cleanups.push(async () => {
      await fake.close();
      data.cleanup();
    });
    const port = await freePort();
    const http = `http://127.0.0.1:${port}`;
    const env = fastEnv({
      ...providerEnv(fake),
      EXAI_DATA_DIR: data.path,
      EXAI_WS_HOST: "127.0.0.1",
      EXAI_WS_PORT: String(port),
      EXAI_WS_MAX_BACKLOG_MB: "4",
    });
    const daemon = await startDaemon(env, http, cleanups);
    const pid = daemon.child.pid ?? 0;
    const before = rssMiB(pid);

    const socketUrl = `ws+unix://${join(data.path, "daemon.sock")}:/`;
    const greedy = await Promise.all(
      [0, 1, 2, 3].map(async () => {
        const ws = new WebSocket(socketUrl, { perMessageDeflate: false });
        cleanups.push(() => ws.terminate());
        ws.on("error", () => undefined);
        const closed = new Promise<{ code: number; reason: string }>((resolve) =>
          ws.on("close", (code, reason) => resolve({ code, reason: reason.toString() })),
        );
        await new Promise<void>((resolve) => ws.once("open", () => resolve()));
        const acked = new Promise<void>((resolve) => ws.once("message", () => resolve()));
        ws.send(JSON.stringify({ op: "hello", client: { name: "greedy", version: "1" } }));
        await acked;
        // From now on this client reads nothing: it only sends.
        (ws as unknown as { _socket: Socket })._socket.pause();
        for (let index = 0; index < 1500; index++) ws.send(JSON.stringify({ op: "list_tools" }));
        return { ws, closed };
      }),
    );
    // Every list_tools answer is tens of kB: without backpressure 4 × 1500 of them pile up in the daemon.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const peak = rssMiB(pid);
    expect(peak).toBeLessThan(200);
    expect(peak - before).toBeLessThan(120);
    for (const client of greedy) (client.ws as unknown as { _socket: Socket })._socket.resume();
    const closes = await Promise.all(greedy.map((client) => client.closed));
    for (const close of closes) {
      expect(close.code).toBe(CLOSE_CODES.BACKLOG);
      expect(close.reason).toContain("EXAI_WS_MAX_BACKLOG_MB");
    }
    // The daemon still serves everyone else.
    expect((await health(http)).status).toBe("ok");
  });
});

describe("the shim's stdin", () => {
  it("answers a message over EXAI_MAX_MESSAGE_MB with a JSON-RPC error and keeps serving (it exited 0 silently)", async () => {
    const data = tempDir("exai-shim-stdin-");
    cleanups.push(() => data.cleanup());
    const child = spawn(process.execPath, [CLI, "shim"], {
      cwd: REPO_ROOT,
      env: {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        EXAI_ENV_FILE: "off",
        EXAI_DATA_DIR: data.path,
        EXAI_MAX_MESSAGE_MB: "1",
        EXAI_LOG_LEVEL: "silent",
      },
      stdio: ["pipe", "pipe", "pipe"],
    });
    cleanups.push(() => {
      if (child.exitCode === null) child.kill("SIGKILL");
    });
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
    const answers: Array<Record<string, unknown>> = [];
    let pending = "";
    child.stdout.on("data", (chunk: Buffer) => {
      pending += chunk.toString();
      let newline = pending.indexOf("\n");
      while (newline >= 0) {
        answers.push(JSON.parse(pending.slice(0, newline)) as Record<string, unknown>);
        pending = pending.slice(newline + 1);
        newline = pending.indexOf("\n");
      }
    });
    const answer = async (id: number) => {
      const deadline = performance.now() + 5000;
      for (;;) {
        const found = answers.find((message) => message.id === id);
        if (found) return found;
        if (performance.now() > deadline) throw new Error(`no answer to ${id}: ${JSON.stringify(answers)}`);
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    };
    const send = (message: unknown) => child.stdin.write(`${JSON.stringify(message)}\n`);
    send(initializeRequest("big"));
    await answer(1);
    send({ jsonrpc: "2.0", method: "notifications/initialized" });
    send({
      jsonrpc: "2.0",
      id: 7,
      method: "tools/call",
      params: { name: "chat", arguments: { prompt: "x".repeat(2 * 1024 * 1024) } },
    });
    expect(await answer(7)).toMatchObject({
      error: { code: -32600, message: expect.stringContaining("EXAI_MAX_MESSAGE_MB") },
    });
    send({ jsonrpc: "2.0", id: 8, method: "ping" });
    expect(await answer(8)).toMatchObject({ result: {} });
    child.stdin.end();
    expect(await exited).toBe(0);
  });
});
