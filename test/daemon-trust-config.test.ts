/**
 * A daemon takes its configuration from the user's configuration file, not from whichever shim
 * started it (real processes): a shim with only HOME, PATH and XDG_CONFIG_HOME in its environment
 * (what Codex passes) starts a daemon that has the configured providers; the daemon does not
 * inherit the shim's provider keys; a shim whose provider variables differ says so in its errors;
 * the daemon re-reads the file when a shim reports a changed one, and on SIGHUP. The two cases
 * run concurrently: each has its own home, data directory, daemon and providers.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it, type TestContext } from "vitest";
import { startFakeProvider, type FakeProvider } from "../src/testing/fake-provider.js";
import { runCleanups, sleep, type Cleanup } from "./support/daemon.js";
import { connectStdioClient, fastEnv, structured, type StdioClient } from "./support/harness.js";

/** GET /health over the daemon's Unix socket (details: pid, providers). */
function socketHealth(socketPath: string): Promise<Record<string, unknown> | undefined> {
  return new Promise((resolve) => {
    const request = http.get({ socketPath, path: "/health" }, (response) => {
      let text = "";
      response.on("data", (chunk: Buffer) => (text += chunk.toString()));
      response.on("end", () => resolve(JSON.parse(text) as Record<string, unknown>));
    });
    request.on("error", () => resolve(undefined));
  });
}

interface Home {
  /** XDG_CONFIG_HOME of the user. */
  xdg: string;
  dataDir: string;
  socketPath: string;
  /** Writes the user's configuration file ($XDG_CONFIG_HOME/exai/.env, 0600). */
  writeConfig(fake: FakeProvider, key: string): void;
  shim(extraEnv?: Record<string, string>): Promise<StdioClient>;
}

/** A test's cleanups, run (in reverse) when it ends. */
function cleanupsOf(context: TestContext): Cleanup[] {
  const cleanups: Cleanup[] = [];
  context.onTestFinished(() => runCleanups(cleanups));
  return cleanups;
}

function userHome(cleanups: Cleanup[]): Home {
  const root = mkdtempSync(join(tmpdir(), "exai-home-"));
  const xdg = join(root, "config");
  const dataDir = join(root, "data");
  mkdirSync(join(xdg, "exai"), { recursive: true, mode: 0o700 });
  const socketPath = join(dataDir, "daemon.sock");
  cleanups.push(async () => {
    const details = await socketHealth(socketPath);
    if (typeof details?.pid === "number") process.kill(details.pid, "SIGKILL");
    rmSync(root, { recursive: true, force: true });
  });
  return {
    xdg,
    dataDir,
    socketPath,
    writeConfig(fake, key) {
      const settings = fastEnv({
        GLM_API_KEY: key,
        GLM_API_URL: fake.url,
        EXAI_DATA_DIR: dataDir,
        EXAI_WS_HOST: "127.0.0.1",
        EXAI_WS_PORT: "0",
      });
      const lines = Object.entries(settings).map(([name, value]) => `${name}=${value ?? ""}`);
      writeFileSync(join(xdg, "exai", ".env"), `${lines.join("\n")}\n`, { mode: 0o600 });
    },
    async shim(extraEnv = {}) {
      // Only HOME, PATH and XDG_CONFIG_HOME (plus what a test adds): what Codex passes a stdio server.
      const shim = await connectStdioClient(
        { EXAI_ENV_FILE: undefined, XDG_CONFIG_HOME: xdg, ...extraEnv },
        ["shim"],
        root,
      );
      cleanups.push(() => shim.close());
      return shim;
    },
  };
}

const chat = (prompt: string, model = "glm-4.5-flash") => ({ name: "chat", arguments: { prompt, model } });

async function fakeProvider(cleanups: Cleanup[]): Promise<FakeProvider> {
  const fake = await startFakeProvider();
  cleanups.push(() => fake.close());
  return fake;
}

describe.concurrent("a shim-started daemon is configured by the user's file", () => {
  it("has the file's providers with a bare environment, ignores the shim's keys, and the shim's errors say which differ", async (context) => {
    const cleanups = cleanupsOf(context);
    const fake = await fakeProvider(cleanups);
    const home = userHome(cleanups);
    home.writeConfig(fake, "key-from-the-file");
    // This client's environment carries another GLM key: the daemon must not pick it up.
    const shim = await home.shim({ GLM_API_KEY: "key-of-this-shell" });
    const result = await shim.client.callTool(chat("configured from the file"));
    expect(structured(result)).toMatchObject({ status: "success" });
    expect(fake.chatRequests()[0]?.headers.authorization).toBe("Bearer key-from-the-file");
    const failed = await shim.client.callTool(chat("p", "no-such-model-anywhere"));
    expect(failed.isError).toBe(true);
    const message = String(structured(failed).message);
    expect(message).toContain("GLM_API_KEY");
    expect(message).toContain(join(home.xdg, "exai", ".env"));
    expect(message).not.toContain("key-of-this-shell");
    expect(message).not.toContain("key-from-the-file");
  });

  it("re-reads the file when a shim reports a changed one, and on SIGHUP", async (context) => {
    const cleanups = cleanupsOf(context);
    const first = await fakeProvider(cleanups);
    const second = await fakeProvider(cleanups);
    const home = userHome(cleanups);
    home.writeConfig(first, "first-key");
    const early = await home.shim();
    expect(structured(await early.client.callTool(chat("to the first")))).toMatchObject({
      status: "success",
    });
    expect(first.chatRequests()).toHaveLength(1);

    // The file changes; a new shim's hello reports its new sha256: the daemon re-reads it first.
    home.writeConfig(second, "second-key");
    const late = await home.shim();
    expect(structured(await late.client.callTool(chat("to the second")))).toMatchObject({
      status: "success",
    });
    expect(second.chatRequests()).toHaveLength(1);
    expect(second.chatRequests()[0]?.headers.authorization).toBe("Bearer second-key");
    expect(first.chatRequests()).toHaveLength(1);

    // SIGHUP: re-read without any shim asking.
    home.writeConfig(first, "first-key-again");
    const details = await socketHealth(home.socketPath);
    process.kill(details?.pid as number, "SIGHUP");
    const deadline = performance.now() + 3000;
    for (;;) {
      await early.client.callTool(chat(`after SIGHUP ${performance.now()}`));
      if (first.chatRequests().length > 1 || performance.now() > deadline) break;
      await sleep(100);
    }
    expect(first.chatRequests().at(-1)?.headers.authorization).toBe("Bearer first-key-again");
  });
});
