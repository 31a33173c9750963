/**
 * Nothing is loaded before it is needed: `exai stdio` answers `initialize` and `tools/list` without
 * the provider SDKs (openai, undici), the tokenizer, the daemon's HTTP/WebSocket stack or its
 * metrics; an idle daemon loads no provider SDK or tokenizer until a call needs them. The child
 * processes run with a preload (NODE_OPTIONS=--import) that records every module they load: ES
 * modules through a module-loader hook, CommonJS ones from require.cache at exit.
 */
import { spawn } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { startFakeProvider, type FakeProvider } from "../src/testing/fake-provider.js";
import { CLI, connectStdioClient, fastEnv, REPO_ROOT, tempDir } from "./support/harness.js";

const HOOK = `import { appendFileSync } from "node:fs";
export async function load(url, context, next) {
  appendFileSync(process.env.EXAI_TEST_LOAD_RECORD + ".esm", url + "\\n");
  return next(url, context);
}
`;

const PRELOAD = `import { register, createRequire } from "node:module";
import { writeFileSync } from "node:fs";
register("./hook.mjs", import.meta.url);
const require = createRequire(import.meta.url);
process.on("exit", () => {
  writeFileSync(process.env.EXAI_TEST_LOAD_RECORD + ".cjs", Object.keys(require.cache).join("\\n"));
});
`;

/** Packages and product folders a process must not have loaded, by the path segment that shows them. */
const SDKS = ["node_modules/openai/", "node_modules/undici/", "node_modules/gpt-tokenizer/"];
const SERVER_STACK = ["node_modules/ws/", "node_modules/prom-client/", "dist/daemon/", "dist/shim/"];

let data: { path: string; cleanup: () => void };
let fake: FakeProvider;
let record: string;
let preloadEnv: Record<string, string>;

beforeEach(async () => {
  data = tempDir("exai-lazy-");
  fake = await startFakeProvider();
  writeFileSync(join(data.path, "hook.mjs"), HOOK);
  writeFileSync(join(data.path, "preload.mjs"), PRELOAD);
  record = join(data.path, "loaded");
  preloadEnv = {
    NODE_OPTIONS: `--import=${join(data.path, "preload.mjs")}`,
    EXAI_TEST_LOAD_RECORD: record,
  };
});

afterEach(async () => {
  await fake.close();
  data.cleanup();
});

/** Every module path the recorded process loaded (file URLs and paths, repository-relative). */
async function loadedModules(): Promise<string[]> {
  const deadline = performance.now() + 10_000;
  while (!existsSync(`${record}.cjs`) && performance.now() < deadline)
    await new Promise((done) => setTimeout(done, 50));
  const read = (file: string) => (existsSync(file) ? readFileSync(file, "utf8").split("\n") : []);
  return [...read(`${record}.esm`), ...read(`${record}.cjs`)]
    .filter(Boolean)
    .map((entry) => entry.replace(/^file:\/\//, "").replace(`${REPO_ROOT}/`, ""));
}

const matching = (modules: string[], segments: string[]) =>
  segments.filter((segment) => modules.some((path) => path.includes(segment)));

describe("lazy loading", () => {
  it("exai stdio answers initialize and tools/list without loading provider SDKs, the tokenizer or the daemon stack", async () => {
    const env = fastEnv({
      GLM_API_KEY: "test-glm-key",
      GLM_API_URL: fake.url,
      EXAI_DATA_DIR: data.path,
      ...preloadEnv,
    });
    const client = await connectStdioClient(env);
    const { tools } = await client.client.listTools();
    expect(tools.map((tool) => tool.name)).toContain("chat");
    await client.close();
    const modules = await loadedModules();
    // The recording works: the CLI itself and the MCP SDK are in it.
    expect(modules).toContain("dist/cli.js");
    expect(matching(modules, ["node_modules/@modelcontextprotocol/sdk/"])).toHaveLength(1);
    expect(matching(modules, [...SDKS, ...SERVER_STACK])).toEqual([]);
  });

  it("exai stdio loads the provider SDK on the first call that needs it, and the call succeeds", async () => {
    const env = fastEnv({
      GLM_API_KEY: "test-glm-key",
      GLM_API_URL: fake.url,
      EXAI_DATA_DIR: data.path,
      ...preloadEnv,
    });
    const client = await connectStdioClient(env);
    const result = await client.client.callTool({
      name: "chat",
      arguments: { prompt: "hello", model: "glm-4.5-flash" },
    });
    expect(result.isError ?? false).toBe(false);
    expect(fake.chatRequests()).toHaveLength(1);
    await client.close();
    const modules = await loadedModules();
    expect(matching(modules, ["node_modules/openai/", "node_modules/undici/"])).toHaveLength(2);
    expect(matching(modules, SERVER_STACK)).toEqual([]);
  });

  it("an idle exai daemon has loaded no provider SDK and no tokenizer", async () => {
    const child = spawn(process.execPath, [CLI, "daemon", "--port", "0"], {
      cwd: REPO_ROOT,
      env: {
        PATH: process.env.PATH,
        HOME: data.path,
        EXAI_ENV_FILE: "off",
        GLM_API_KEY: "test-glm-key",
        GLM_API_URL: fake.url,
        EXAI_DATA_DIR: data.path,
        EXAI_LOG_LEVEL: "warn",
        ...preloadEnv,
      },
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    const listening = new Promise<void>((done, reject) => {
      child.stderr.on("data", (chunk: Buffer) => {
        stderr += chunk.toString();
        if (stderr.includes("listening")) done();
      });
      child.once("exit", () => reject(new Error(`the daemon exited early: ${stderr}`)));
    });
    try {
      await listening;
    } finally {
      const exited = new Promise((done) => child.once("exit", done));
      child.kill("SIGTERM");
      await exited;
    }
    const modules = await loadedModules();
    expect(modules).toContain("dist/daemon/server.js");
    expect(matching(modules, SDKS)).toEqual([]);
  });
});
