/**
 * Shared test set-up: a fake provider, a config with time-scaled budgets pointing at it, a runtime
 * on a temporary data dir, and an MCP SDK client talking to `node dist/cli.js stdio` over real stdio.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { ExaiError } from "../../src/base/errors.js";
import { loadConfig, type Config } from "../../src/config/load.js";
import { createLogger } from "../../src/base/logging.js";
import { createRuntime, type Runtime } from "../../src/runtime/runtime.js";
import { startFakeProvider, type FakeProvider } from "../../src/testing/fake-provider.js";

export const REPO_ROOT = resolve(import.meta.dirname, "../..");
export const CLI = join(REPO_ROOT, "dist", "cli.js");

/** A fresh temporary directory, removed by the returned cleanup. */
export function tempDir(prefix = "exai-test-"): { path: string; cleanup: () => void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, cleanup: () => rmSync(path, { recursive: true, force: true }) };
}

/** Time-scaled defaults (seconds) so timeouts fire in tests within ~0.2–2 s. */
export function fastEnv(
  overrides: Record<string, string | undefined> = {},
): Record<string, string | undefined> {
  return {
    SIMPLE_TOOL_TIMEOUT_SECS: "3",
    WORKFLOW_TOOL_TIMEOUT_SECS: "8",
    GLM_TIMEOUT_SECS: "2",
    KIMI_TIMEOUT_SECS: "2",
    CUSTOM_TIMEOUT_SECS: "2",
    KIMI_WEB_SEARCH_TIMEOUT_SECS: "2",
    EX_HTTP_TIMEOUT_SECONDS: "2",
    EX_STREAM_IDLE_TIMEOUT_SECS: "1",
    EXPERT_HEARTBEAT_INTERVAL_SECS: "0.5",
    EXAI_WS_PROGRESS_INTERVAL_SECS: "0.5",
    EXAI_LOG_LEVEL: "warn",
    ...overrides,
  };
}

/** Environment that points GLM and Kimi at the fake provider. */
export function providerEnv(fake: FakeProvider): Record<string, string> {
  return {
    GLM_API_KEY: "test-glm-key",
    GLM_API_URL: fake.url,
    KIMI_API_KEY: "test-kimi-key",
    KIMI_API_URL: fake.url,
  };
}

export function makeConfig(env: Record<string, string | undefined>, cwd = REPO_ROOT): Config {
  return loadConfig({ env, cwd, envFile: false });
}

export interface TestRuntime {
  runtime: Runtime;
  fake: FakeProvider;
  dataDir: string;
  close(): Promise<void>;
}

/** A fake provider + an in-process runtime wired to it. Close it in afterEach. */
export async function startTestRuntime(
  env: Record<string, string | undefined> = {},
  options: { withProvider?: boolean } = {},
): Promise<TestRuntime> {
  // The providers load the openai SDK and undici on their first request; loading them here keeps
  // that one-time cost (hundreds of ms under a loaded test run) out of the timeouts measured below.
  await Promise.all([import("openai"), import("undici")]);
  const fake = await startFakeProvider();
  const data = tempDir("exai-data-");
  const config = makeConfig(
    fastEnv({
      EXAI_DATA_DIR: data.path,
      EXAI_ALLOWED_ROOTS: `${REPO_ROOT},${tmpdir()}`,
      ...(options.withProvider === false ? {} : providerEnv(fake)),
      ...env,
    }),
  );
  const runtime = createRuntime(config, { mode: "stdio", logger: createLogger({ level: "silent" }) });
  return {
    runtime,
    fake,
    dataDir: data.path,
    async close() {
      await runtime.close();
      await fake.close();
      data.cleanup();
    },
  };
}

export interface StdioClient {
  client: Client;
  transport: StdioClientTransport;
  stderr: () => string;
  close(): Promise<void>;
}

/** Spawns `node dist/cli.js <command>` and connects the official MCP SDK client to its stdio. */
export async function connectStdioClient(
  env: Record<string, string | undefined>,
  args: string[] = ["stdio"],
  cwd = REPO_ROOT,
): Promise<StdioClient> {
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [CLI, ...args],
    cwd,
    env: Object.fromEntries(
      // EXAI_ENV_FILE=off: the developer's own ~/.config/exai/.env must not leak into tests.
      Object.entries({ PATH: process.env.PATH, HOME: process.env.HOME, EXAI_ENV_FILE: "off", ...env }).filter(
        (entry): entry is [string, string] => entry[1] !== undefined,
      ),
    ),
    stderr: "pipe",
  });
  let stderr = "";
  transport.stderr?.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const client = new Client({ name: "exai-test", version: "1.0.0" });
  await client.connect(transport);
  return {
    client,
    transport,
    stderr: () => stderr,
    async close() {
      await client.close();
    },
  };
}

/** The structured result of a tools/call (parsed JSON text as a fallback). */
export function structured(result: unknown): Record<string, unknown> {
  const value = result as {
    structuredContent?: Record<string, unknown>;
    content?: Array<{ type: string; text?: string }>;
  };
  if (value.structuredContent) return value.structuredContent;
  const text = value.content?.find((part) => part.type === "text")?.text ?? "{}";
  return JSON.parse(text) as Record<string, unknown>;
}

/** Monotonic milliseconds. */
export const clock = () => performance.now();

/** The ExaiError `promise` rejects with; fails the test when it resolves or rejects with anything else. */
export async function rejection(promise: Promise<unknown>): Promise<ExaiError> {
  const error: unknown = await promise.then(
    () => undefined,
    (reason: unknown) => reason,
  );
  if (!ExaiError.is(error)) throw new Error(`expected an ExaiError, got ${String(error)}`);
  return error;
}

/** A JSON-RPC `initialize` request (protocol 2025-06-18) from a client named `client`, id 1. */
export function initializeRequest(client: string): Record<string, unknown> {
  return {
    jsonrpc: "2.0",
    id: 1,
    method: "initialize",
    params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: client, version: "1" } },
  };
}
