/**
 * Real-process helpers for daemon tests: free ports, `exai daemon` as a child process, shims with
 * the MCP SDK client, /health polling. Every started process is registered for cleanup.
 *
 * Daemons get their configuration the way users' daemons do: from a configuration file
 * (EXAI_ENV_FILE, written by `withConfigFile`), with only HOME, PATH, EXAI_ENV_FILE and
 * EXAI_DATA_DIR in their environment. The TCP endpoints need the daemon's token: `health` and
 * `daemonFetch` send the one in EXAI_DATA_DIR/daemon.token of the daemon registered for that URL.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect as netConnect, createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLogger } from "../../src/base/logging.js";
import { createDaemon, type Daemon } from "../../src/daemon/server.js";
import { createRuntime, type Runtime } from "../../src/runtime/runtime.js";
import { startFakeProvider, type FakeProvider } from "../../src/testing/fake-provider.js";
import {
  CLI,
  connectStdioClient,
  fastEnv,
  makeConfig,
  providerEnv,
  REPO_ROOT,
  tempDir as makeTempDir,
  type StdioClient,
} from "./harness.js";

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

/** EXAI_DATA_DIR of the daemon behind each http://127.0.0.1:<port> base URL (for its token). */
const dataDirs = new Map<string, string>();

/** Remembers that the daemon answering on `http` keeps its files (token) in `dataDir`. */
export function registerDaemon(http: string, dataDir: string): void {
  dataDirs.set(http, dataDir);
}

/** The TCP token of the daemon on `http` (EXAI_DATA_DIR/daemon.token), when it has written one. */
export function daemonToken(http: string): string | undefined {
  const dataDir = dataDirs.get(http);
  const file = dataDir !== undefined ? join(dataDir, "daemon.token") : undefined;
  return file !== undefined && existsSync(file) ? readFileSync(file, "utf8").trim() : undefined;
}

/** fetch() of a daemon path with its token (`Authorization: Bearer`). */
export function daemonFetch(http: string, path: string, init: RequestInit = {}): Promise<Response> {
  const token = daemonToken(http);
  const headers = new Headers(init.headers);
  if (token !== undefined) headers.set("authorization", `Bearer ${token}`);
  return fetch(`${http}${path}`, { ...init, headers });
}

/** GET /health of a daemon, with its token (rejects when nothing answers within timeoutMs). */
export async function health(http: string, timeoutMs = 1000): Promise<Record<string, unknown>> {
  const response = await daemonFetch(http, "/health", { signal: AbortSignal.timeout(timeoutMs) });
  return (await response.json()) as Record<string, unknown>;
}

/**
 * Writes the variables of `env` that configure exai into a configuration file (0600, in a fresh
 * 0700 directory) and returns `env` with EXAI_ENV_FILE pointing at it. The file is removed with
 * the other cleanups.
 */
export function withConfigFile(
  env: Record<string, string | undefined>,
  cleanups: Cleanup[],
): Record<string, string | undefined> {
  if (env.EXAI_ENV_FILE !== undefined && env.EXAI_ENV_FILE !== "off") return env;
  const dir = mkdtempSync(join(tmpdir(), "exai-config-"));
  const file = join(dir, "exai.env");
  const lines = Object.entries(env)
    .filter(([name, value]) => value !== undefined && !["PATH", "HOME", "EXAI_ENV_FILE"].includes(name))
    .map(([name, value]) => `${name}=${JSON.stringify(value)}`);
  writeFileSync(file, `${lines.join("\n")}\n`, { mode: 0o600 });
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return { ...env, EXAI_ENV_FILE: file };
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

/**
 * Starts `exai daemon` configured by `env` — written to a configuration file, as a shim-started
 * daemon gets it — and waits until /health on `http` answers with its details.
 */
export async function startDaemon(
  env: Record<string, string | undefined>,
  http: string,
  cleanups: Cleanup[],
): Promise<DaemonProcess> {
  const configured = withConfigFile(env, cleanups);
  if (env.EXAI_DATA_DIR !== undefined) registerDaemon(http, env.EXAI_DATA_DIR);
  const child = spawn(process.execPath, [CLI, "daemon"], {
    cwd: REPO_ROOT,
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      EXAI_ENV_FILE: configured.EXAI_ENV_FILE,
      ...(env.EXAI_DATA_DIR !== undefined ? { EXAI_DATA_DIR: env.EXAI_DATA_DIR } : {}),
      ...(env.EXAI_DAEMON_TEST_HOOKS !== undefined
        ? { EXAI_DAEMON_TEST_HOOKS: env.EXAI_DAEMON_TEST_HOOKS }
        : {}),
    },
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

/**
 * Starts `exai shim` with the MCP SDK client on its stdio (in `cwd`, default the repository). Its
 * configuration goes into a configuration file too (EXAI_ENV_FILE), so a daemon it starts has it.
 */
export async function startShim(
  env: Record<string, string | undefined>,
  cleanups: Cleanup[],
  cwd?: string,
): Promise<StdioClient> {
  if (env.EXAI_DATA_DIR !== undefined && env.EXAI_WS_PORT !== undefined)
    registerDaemon(`http://127.0.0.1:${env.EXAI_WS_PORT}`, env.EXAI_DATA_DIR);
  const shim = await connectStdioClient(withConfigFile(env, cleanups), ["shim"], cwd);
  cleanups.push(() => shim.close());
  return shim;
}

/**
 * The in-flight counts of every admission cap in a /health body (`inflight.global`, each
 * `inflight.provider.*` / `inflight.tool.*`, and `inflight.session`). Throws when the body does not
 * have that shape, so a changed /health fails the test instead of matching nothing.
 */
export function slotCounts(body: Record<string, unknown>): Record<string, number> {
  const inflight = body.inflight as Record<string, unknown> | undefined;
  const counts: Record<string, number> = {};
  const take = (name: string, cap: unknown) => {
    const value = (cap as { inflight?: unknown } | undefined)?.inflight;
    if (typeof value !== "number")
      throw new Error(`/health has no ${name}.inflight: ${JSON.stringify(body)}`);
    counts[name] = value;
  };
  take("global", inflight?.global);
  take("session", inflight?.session);
  for (const kind of ["provider", "tool"] as const) {
    const caps = inflight?.[kind];
    if (typeof caps !== "object" || caps === null)
      throw new Error(`/health has no inflight.${kind}: ${JSON.stringify(body)}`);
    for (const [name, cap] of Object.entries(caps)) take(`${kind}.${name}`, cap);
  }
  if (typeof body.calls_inflight !== "number")
    throw new Error(`/health has no calls_inflight: ${JSON.stringify(body)}`);
  counts.calls = body.calls_inflight;
  return counts;
}

/**
 * Resolves when every admission cap reported by /health is back at 0 in flight, and no call is
 * running (polls up to 2 s). Throws when /health lacks those counts.
 */
export async function expectAllSlotsFree(http: string): Promise<void> {
  const deadline = performance.now() + 2000;
  for (;;) {
    const counts = slotCounts(await health(http));
    if (Object.values(counts).every((value) => value === 0)) return;
    if (performance.now() > deadline) throw new Error(`slots still held: ${JSON.stringify(counts)}`);
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
  const { server, connections, sockets } = proxyServer(() => netConnect(targetPort, "127.0.0.1"));
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

export interface SocketProxy {
  /** A fresh 0700 directory holding `daemon.sock`, the proxy: use it as the shim's EXAI_DATA_DIR. */
  dataDir: string;
  readonly connections: ProxiedConnection[];
  close(): Promise<void>;
}

/**
 * A proxy of the daemon's Unix socket `targetSocket`, listening on `<dataDir>/daemon.sock` of a
 * fresh private directory, whose connections a test can freeze and cut.
 */
export async function startSocketProxy(targetSocket: string, cleanups: Cleanup[]): Promise<SocketProxy> {
  const dataDir = mkdtempSync(join(tmpdir(), "exai-proxy-"));
  const { server, connections, sockets } = proxyServer(() => netConnect(targetSocket));
  await new Promise<void>((resolve) => server.listen(join(dataDir, "daemon.sock"), resolve));
  const proxy: SocketProxy = {
    dataDir,
    connections,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
  cleanups.push(async () => {
    await proxy.close();
    rmSync(dataDir, { recursive: true, force: true });
  });
  return proxy;
}

function proxyServer(dial: () => Socket): {
  server: Server;
  connections: ProxiedConnection[];
  sockets: Set<Socket>;
} {
  const connections: ProxiedConnection[] = [];
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = dial();
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
  return { server, connections, sockets };
}

/** A daemon served inside the test process (runtime + fake provider + data dir), removed by `cleanups`. */
export interface InProcessDaemon {
  daemon: Daemon;
  runtime: Runtime;
  fake: FakeProvider;
  /** http://127.0.0.1:<port> of its TCP listener. */
  base: string;
  dataDir: string;
}

/**
 * Starts a daemon in this process on an ephemeral port, with its own fake provider and data
 * directory (`prefix` names the temp dir); `env` adds to or overrides the fast test settings,
 * `cwd` is the configuration's working directory (the harness default when omitted).
 */
export async function startInProcessDaemon(
  cleanups: Cleanup[],
  options: { env?: Record<string, string>; prefix?: string; cwd?: string } = {},
): Promise<InProcessDaemon> {
  const fake = await startFakeProvider();
  const data = makeTempDir(options.prefix ?? "exai-daemon-");
  const config = makeConfig(
    fastEnv({ EXAI_DATA_DIR: data.path, ...providerEnv(fake), ...options.env }),
    options.cwd,
  );
  const runtime = createRuntime(config, { mode: "daemon", logger: createLogger({ level: "silent" }) });
  const daemon = await createDaemon(config, { host: "127.0.0.1", port: 0, runtime });
  cleanups.push(async () => {
    await daemon.close({ drainMs: 0 });
    await runtime.close();
    await fake.close();
    data.cleanup();
  });
  return { daemon, runtime, fake, base: `http://127.0.0.1:${daemon.port}`, dataDir: data.path };
}
