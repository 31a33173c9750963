/**
 * Send backpressure of the daemon, with a real `exai daemon` process: clients that send requests
 * and never read are disconnected with close 4008 once their unread backlog passes
 * EXAI_WS_MAX_BACKLOG_MB, and the daemon's RSS stays bounded (it grew by gigabytes before).
 */
import { readFileSync } from "node:fs";
import type { Socket } from "node:net";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { CLOSE_CODES } from "../src/daemon/protocol.js";
import { startFakeProvider } from "../src/testing/fake-provider.js";
import { freePort, health, runCleanups, startDaemon, type Cleanup } from "./support/daemon.js";
import { fastEnv, providerEnv, tempDir } from "./support/harness.js";

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
