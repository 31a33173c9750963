/**
 * Real-process helpers for daemon tests: free ports, `exai daemon` as a child process, shims with
 * the MCP SDK client, /health polling. Every started process is registered for cleanup.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { connect as netConnect, createServer, type Socket } from "node:net";
import { CLI, connectStdioClient, REPO_ROOT, type StdioClient } from "./harness.js";

export type Cleanup = () => Promise<void> | void;

/** Runs and empties a cleanup list in reverse order; one failure does not stop the others. */
export async function runCleanups(cleanups: Cleanup[]): Promise<void> {
  for (const cleanup of cleanups.splice(0).reverse()) {
    try {
      await cleanup();
    } catch {
      // One failed cleanup must not keep the others (process kills) from running.
    }
  }
}

/** A port nothing listens on right now. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** GET /health of a daemon (rejects when nothing answers within timeoutMs). */
export async function health(http: string, timeoutMs = 1000): Promise<Record<string, unknown>> {
  const response = await fetch(`${http}/health`, { signal: AbortSignal.timeout(timeoutMs) });
  return (await response.json()) as Record<string, unknown>;
}

/** Kills whatever daemon answers /health on `http` (e.g. one a shim started). */
export async function killDaemonOn(http: string): Promise<void> {
  try {
    const { pid } = await health(http, 500);
    if (typeof pid === "number" && pid !== process.pid) process.kill(pid, "SIGKILL");
  } catch {
    // Nothing answers: no daemon left to kill.
  }
}

export interface DaemonProcess {
  child: ChildProcess;
  stderr: () => string;
}

/** Starts `exai daemon` with `env` and waits until /health on `http` answers. */
export async function startDaemon(
  env: Record<string, string | undefined>,
  http: string,
  cleanups: Cleanup[],
): Promise<DaemonProcess> {
  const child = spawn(process.execPath, [CLI, "daemon"], {
    cwd: REPO_ROOT,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  cleanups.push(() => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGCONT");
      child.kill("SIGKILL");
    }
  });
  const deadline = performance.now() + 8000;
  for (;;) {
    try {
      if ((await health(http, 300)).status === "ok") return { child, stderr: () => stderr };
    } catch {
      // not listening yet
    }
    if (child.exitCode !== null) throw new Error(`the daemon exited early: ${stderr}`);
    if (performance.now() > deadline) throw new Error(`the daemon did not start: ${stderr}`);
    await sleep(50);
  }
}

/** Starts `exai shim` with the MCP SDK client on its stdio (in `cwd`, default the repository). */
export async function startShim(
  env: Record<string, string | undefined>,
  cleanups: Cleanup[],
  cwd?: string,
): Promise<StdioClient> {
  const shim = await connectStdioClient(env, ["shim"], cwd);
  cleanups.push(() => shim.close());
  return shim;
}

/** Resolves when every admission cap reported by /health is back at 0 in flight (polls up to 2 s). */
export async function expectAllSlotsFree(http: string): Promise<void> {
  const deadline = performance.now() + 2000;
  for (;;) {
    const inflight = (await health(http)).inflight as Record<string, unknown>;
    const values = JSON.stringify(inflight).match(/"inflight":\d+/g) ?? [];
    if (values.every((value) => value === '"inflight":0')) return;
    if (performance.now() > deadline) throw new Error(`slots still held: ${JSON.stringify(inflight)}`);
    await sleep(20);
  }
}

/** One proxied TCP connection. */
export interface ProxiedConnection {
  /** Drops every byte in both directions from now on (a black hole: nothing is closed). */
  freeze(): void;
  /** Destroys both sides at once (no close handshake reaches either peer). */
  cut(): void;
}

export interface TcpProxy {
  port: number;
  /** The accepted connections, in order. */
  readonly connections: ProxiedConnection[];
  close(): Promise<void>;
}

/** A TCP proxy on 127.0.0.1 to `targetPort` whose connections a test can freeze and cut. */
export async function startTcpProxy(targetPort: number, cleanups: Cleanup[]): Promise<TcpProxy> {
  const connections: ProxiedConnection[] = [];
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = netConnect(targetPort, "127.0.0.1");
    let frozen = false;
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on("error", () => undefined); // a cut connection reports ECONNRESET: expected
      socket.on("close", () => sockets.delete(socket));
    }
    client.on("data", (chunk: Buffer) => {
      if (!frozen) upstream.write(chunk);
    });
    upstream.on("data", (chunk: Buffer) => {
      if (!frozen) client.write(chunk);
    });
    client.on("end", () => upstream.end());
    upstream.on("end", () => client.end());
    connections.push({
      freeze() {
        frozen = true;
      },
      cut() {
        client.destroy();
        upstream.destroy();
      },
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  const proxy: TcpProxy = {
    port: typeof address === "object" && address !== null ? address.port : 0,
    connections,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
  cleanups.push(() => proxy.close());
  return proxy;
}
