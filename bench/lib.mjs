// Shared helpers of the benchmarks: percentiles, timed loops, child processes, MCP clients.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, connect } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
export const CLI = join(ROOT, "dist", "cli.js");

/** The q-quantile (0..1) of numbers, nearest-rank. */
export function quantile(values, q) {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[index];
}

export const ms = (value) => (Number.isFinite(value) ? value.toFixed(2) : "—");

/**
 * Runs `task(i)` `total` times with `concurrency` workers; returns each latency (ms) and the wall time.
 */
export async function closedLoop(task, { total, concurrency }) {
  const latencies = [];
  let next = 0;
  const started = performance.now();
  const worker = async () => {
    while (next < total) {
      const index = next++;
      const t0 = performance.now();
      await task(index);
      latencies.push(performance.now() - t0);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, total) }, worker));
  return { latencies, wallMs: performance.now() - started };
}

/** A free TCP port on 127.0.0.1. */
export function freePort() {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolvePort(port));
    });
  });
}

/** Resolves when something accepts TCP connections on the port (or rejects after timeoutMs). */
export async function waitForPort(port, timeoutMs = 15_000) {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    const open = await new Promise((done) => {
      const socket = connect(port, "127.0.0.1");
      socket.once("connect", () => {
        socket.destroy();
        done(true);
      });
      socket.once("error", () => done(false));
    });
    if (open) return;
    await new Promise((done) => setTimeout(done, 50));
  }
  throw new Error(`nothing listened on port ${port} within ${timeoutMs} ms`);
}

/** A temporary data directory for one exai process. */
export function dataDir() {
  const path = mkdtempSync(join(tmpdir(), "exai-bench-"));
  return { path, cleanup: () => rmSync(path, { recursive: true, force: true }) };
}

/** Environment with time budgets and caps suited to benchmarks. */
export function benchEnv(extra = {}) {
  return {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    EXAI_LOG_LEVEL: "warn",
    EXAI_WS_GLOBAL_MAX_INFLIGHT: "2000",
    EXAI_WS_GLM_MAX_INFLIGHT: "2000",
    EXAI_WS_KIMI_MAX_INFLIGHT: "2000",
    EXAI_WS_SESSION_MAX_INFLIGHT: "2000",
    ...extra,
  };
}

/** Spawns `node dist/cli.js <args>` and connects the MCP SDK client to its stdio. */
export async function mcpClient(args, env) {
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [CLI, ...args],
    env,
    stderr: "ignore",
  });
  const client = new Client({ name: "exai-bench", version: "1.0.0" });
  client.onerror = () => undefined;
  await client.connect(transport);
  return client;
}

/** Spawns a long-running child (daemon, gateway); returns {child, stop()}. */
export function startProcess(command, args, env) {
  const child = spawn(command, args, { env, stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (chunk) => {
    stderr = (stderr + chunk.toString()).slice(-4000);
  });
  return {
    child,
    stderr: () => stderr,
    stop: () =>
      new Promise((done) => {
        if (child.exitCode !== null) return done();
        child.once("exit", () => done());
        child.kill("SIGTERM");
        setTimeout(() => child.kill("SIGKILL"), 3000).unref();
      }),
  };
}

/** Resident set size of a process, MB (Linux /proc). */
export async function rssMb(pid) {
  const { readFile } = await import("node:fs/promises");
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  const match = /VmRSS:\s+(\d+) kB/.exec(status);
  return match ? Number(match[1]) / 1024 : NaN;
}
