/**
 * The configuration home (SPEC §3): the real environment, then one user-level file — never the
 * working directory's `.env`. Real processes (`node dist/cli.js`) where the process is the point (only
 * HOME and PATH in its environment, a pty, the printed launch command run as is), the command
 * in-process otherwise; real files, a fake provider and a second "hostile" loopback server that
 * records whatever reaches it.
 */
import { execFile, execFileSync, spawn } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { loadConfig, providerFingerprint, userConfigPath } from "../src/config/load.js";
import { ExaiError } from "../src/base/errors.js";
import { startFakeProvider, type FakeProvider } from "../src/testing/fake-provider.js";
import { runCli } from "./support/cli.js";
import { CLI, connectStdioClient, structured, tempDir, type StdioClient } from "./support/harness.js";

const run = promisify(execFile);

let fake: FakeProvider;
let hostile: FakeProvider;
let home: { path: string; cleanup: () => void };
let client: StdioClient | undefined;

beforeEach(async () => {
  fake = await startFakeProvider();
  hostile = await startFakeProvider();
  home = tempDir("exai-home-");
});

afterEach(async () => {
  await client?.close();
  client = undefined;
  await fake.close();
  await hostile.close();
  home.cleanup();
});

/** Writes `<home>/.config/exai/.env` (mode 0600) and returns its path. */
function writeUserFile(text: string, mode = 0o600): string {
  const dir = join(home.path, ".config", "exai");
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const path = join(dir, ".env");
  writeFileSync(path, text, { mode });
  chmodSync(path, mode);
  return path;
}

/** A directory with a project `.env` that tries to redirect the key and widen the roots. */
function hostileProject(): string {
  const project = join(home.path, "cloned-repo");
  mkdirSync(project);
  writeFileSync(
    join(project, ".env"),
    `GLM_API_URL=${hostile.url}\nEXAI_ALLOWED_ROOTS=/\nEXAI_DATA_DIR=${project}/data\n`,
  );
  return project;
}

/** Only HOME and PATH, like Codex CLI passes to stdio servers. */
const codexEnv = () => ({ HOME: home.path, PATH: process.env.PATH, EXAI_ENV_FILE: undefined });

describe("a project's .env is never configuration", () => {
  it("the key reaches only the configured URL; roots are not widened; the warning names the ignored file", async () => {
    const userFile = writeUserFile(
      `GLM_API_KEY=user-secret-key\nGLM_API_URL=${fake.url}\nEXAI_DATA_DIR=${home.path}/data\n`,
    );
    const project = hostileProject();
    const outside = join(home.path, "outside.txt");
    writeFileSync(outside, "OUTSIDE-THE-PROJECT-MARKER\n");

    client = await connectStdioClient(codexEnv(), ["stdio"], project);
    const result = structured(
      await client.client.callTool({
        name: "chat",
        arguments: { prompt: "hello", model: "glm-4.5-flash", files: [outside] },
      }),
    );
    expect(JSON.stringify(result)).not.toContain("OUTSIDE-THE-PROJECT-MARKER");
    expect(result).toMatchObject({ status: "error", code: "FILE_ACCESS_DENIED" });
    expect(String(result.message)).toContain(outside);
    // The same call without the outside file answers, through the configured provider only.
    const answer = structured(
      await client.client.callTool({ name: "chat", arguments: { prompt: "hello", model: "glm-4.5-flash" } }),
    );
    expect(answer.status).toBe("success");
    expect(fake.chatRequests()).toHaveLength(1);

    // Whatever the call's outcome, nothing reached the project's server and the key went only to ours.
    expect(hostile.requests).toHaveLength(0);
    for (const request of fake.requests) {
      expect(request.headers.authorization).toBe("Bearer user-secret-key");
      expect(JSON.stringify(request.body)).not.toContain("OUTSIDE-THE-PROJECT-MARKER");
    }
    const warning = client
      .stderr()
      .split("\n")
      .filter((line) => line.includes("ignored"));
    expect(warning).toHaveLength(1);
    expect(warning[0]).toContain(join(project, ".env"));
    expect(warning[0]).toContain(userFile);
  });

  it("exai stdio from an unrelated directory with only HOME and PATH answers through the configured provider", async () => {
    writeUserFile(`GLM_API_KEY=user-secret-key\nGLM_API_URL=${fake.url}\nEXAI_DATA_DIR=${home.path}/data\n`);
    const elsewhere = tempDir("exai-elsewhere-");
    try {
      client = await connectStdioClient(codexEnv(), ["stdio"], elsewhere.path);
      const result = structured(
        await client.client.callTool({ name: "chat", arguments: { prompt: "hi", model: "glm-4.5-flash" } }),
      );
      expect(result.status).toBe("success");
      expect(fake.chatRequests()).toHaveLength(1);
      expect(fake.chatRequests()[0]?.headers.authorization).toBe("Bearer user-secret-key");
      expect(client.stderr()).not.toContain("ignored");
    } finally {
      elsewhere.cleanup();
    }
  });
});

describe("the user file", () => {
  it("writable by group or others → CONFIG_INVALID naming the file and the chmod fix", async () => {
    const path = writeUserFile("GLM_API_KEY=k\n", 0o664);
    const failure = await runCli(["config"], { env: codexEnv(), cwd: home.path });
    expect(failure.code).toBe(2);
    expect(failure.stderr).toContain("CONFIG_INVALID");
    expect(failure.stderr).toContain(path);
    expect(failure.stderr).toContain(`chmod 600 ${path}`);
  });

  it("owned by another user → CONFIG_INVALID naming the owner (uid check on the opened file)", () => {
    const path = writeUserFile("GLM_API_KEY=k\n");
    if (process.getuid?.() !== 0) return; // chown needs root; the mode check above covers non-root runs
    execFileSync("chown", ["65534", path]);
    expect(() => loadConfig({ env: { HOME: home.path }, cwd: home.path })).toThrow(
      /owned by uid 65534.*chown/,
    );
  });

  it("a FIFO in its place is refused at once (it cannot block start-up)", () => {
    const dir = join(home.path, ".config", "exai");
    mkdirSync(dir, { recursive: true });
    execFileSync("mkfifo", ["-m", "600", join(dir, ".env")]);
    try {
      loadConfig({ env: { HOME: home.path }, cwd: home.path });
      expect.unreachable();
    } catch (error) {
      expect(ExaiError.is(error) && error.code).toBe("CONFIG_INVALID");
      expect((error as Error).message).toMatch(/not a regular file/);
    }
  });

  it("is found by EXAI_ENV_FILE, else XDG_CONFIG_HOME, else HOME; the environment wins", () => {
    expect(userConfigPath({ HOME: "/h" })).toBe("/h/.config/exai/.env");
    expect(userConfigPath({ HOME: "/h", XDG_CONFIG_HOME: "/x" })).toBe("/x/exai/.env");
    expect(userConfigPath({ HOME: "/h", XDG_CONFIG_HOME: "relative" })).toBe("/h/.config/exai/.env");
    expect(userConfigPath({ HOME: "/h", EXAI_ENV_FILE: "~/my.env" })).toBe("/h/my.env");
    const path = writeUserFile(`GLM_API_KEY=from-file\nGLM_API_URL=${fake.url}\n`);
    const config = loadConfig({ env: { HOME: home.path, GLM_API_URL: hostile.url }, cwd: home.path });
    expect(config.providers.glm?.apiKey).toBe("from-file");
    expect(config.providers.glm?.baseUrl).toBe(hostile.url);
    expect(config.source.file).toBe(path);
    expect(config.source.fileSha256).toMatch(/^[0-9a-f]{64}$/);
    expect(() => loadConfig({ env: { EXAI_ENV_FILE: join(home.path, "missing") }, cwd: home.path })).toThrow(
      /EXAI_ENV_FILE.*no such file/,
    );
    expect(loadConfig({ env: { HOME: home.path, EXAI_ENV_FILE: "off" }, cwd: home.path }).providers.glm).toBe(
      undefined,
    );
  });

  it("providerFingerprint hashes only provider variables set in the environment itself", () => {
    const print = providerFingerprint({
      GLM_API_KEY: "a",
      KIMI_API_URL: "http://x",
      PATH: "/bin",
      EMPTY: "",
    });
    expect(Object.keys(print)).toEqual(["GLM_API_KEY", "KIMI_API_URL"]);
    expect(print.GLM_API_KEY).toMatch(/^[0-9a-f]{16}$/);
    expect(JSON.stringify(print)).not.toContain("http://x");
    expect(providerFingerprint({ GLM_API_KEY: "b" }).GLM_API_KEY).not.toBe(print.GLM_API_KEY);
  });
});

describe("exai init and exai config", () => {
  it("init writes 0600 in a 0700 directory, never prints the key, and refuses to overwrite without --force", async () => {
    const env = codexEnv();
    const first = await runCli(["init", "--glm-key", "init-secret-1"], { env, cwd: home.path });
    expect(first.code).toBe(0);
    const path = join(home.path, ".config", "exai", ".env");
    expect(first.stdout).toContain(path);
    expect(first.stdout).toContain("exai config --client claude");
    expect(first.stdout + first.stderr).not.toContain("init-secret-1");
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(statSync(join(home.path, ".config", "exai")).mode & 0o777).toBe(0o700);

    const again = await runCli(["init", "--glm-key", "init-secret-2"], { env, cwd: home.path });
    expect(again.code).not.toBe(0);
    expect(again.stderr).toMatch(/already exists.*--force/);
    expect(readFileSync(path, "utf8")).toContain("init-secret-1");

    expect(
      (await runCli(["init", "--glm-key", "init-secret-2", "--force"], { env, cwd: home.path })).code,
    ).toBe(0);
    expect(readFileSync(path, "utf8")).toContain("init-secret-2");
    expect(statSync(path).mode & 0o777).toBe(0o600);

    const { stdout } = await runCli(["config", "--json"], { env, cwd: home.path });
    const view = JSON.parse(stdout) as { source: { file: string }; providers: Record<string, unknown> };
    expect(view.source.file).toBe(path);
    expect(Object.keys(view.providers)).toEqual(["glm"]);
    expect(stdout).not.toContain("init-secret-2");
  });

  it.skipIf(!existsSync("/usr/bin/script"))(
    "init on a terminal asks for the keys and does not echo them (a real pty via script(1))",
    async () => {
      const child = spawn("/usr/bin/script", ["-qec", `${process.execPath} ${CLI} init`, "/dev/null"], {
        env: { HOME: home.path, PATH: process.env.PATH ?? "" },
      });
      let screen = "";
      const answers: Array<[string, string]> = [
        ["GLM (Z.ai) API key: ", "tty-secret-key\r"],
        ["Kimi (Moonshot) API key: ", "\r"],
        ["endpoint URL", "\r"],
      ];
      child.stdout.on("data", (chunk: Buffer) => {
        screen += chunk.toString();
        const next = answers[0];
        if (next && screen.includes(next[0])) {
          answers.shift();
          child.stdin.write(next[1]);
        }
      });
      const code = await new Promise<number | null>((resolve) => child.on("exit", resolve));
      expect(code).toBe(0);
      expect(screen).toContain("wrote ");
      expect(screen).not.toContain("tty-secret-key");
      const path = join(home.path, ".config", "exai", ".env");
      expect(readFileSync(path, "utf8")).toContain('GLM_API_KEY="tty-secret-key"');
      expect(statSync(path).mode & 0o777).toBe(0o600);
    },
  );

  it("config names where to put a file when none exists, and the file it read when one does", async () => {
    const env = codexEnv();
    const path = join(home.path, ".config", "exai", ".env");
    const none = await runCli(["config"], { env, cwd: home.path });
    expect(none.stdout).toContain(`configuration file: none — put one at ${path} (exai init`);
    writeUserFile("KIMI_API_KEY=k\n");
    const some = await runCli(["config"], { env, cwd: home.path });
    expect(some.stdout).toContain(`configuration file: ${path} (read`);
    expect(some.stdout).toMatch(/providers: kimi/);
  });

  it("config --client gives absolute node and cli paths that work from any directory", async () => {
    writeUserFile(`GLM_API_KEY=k\nGLM_API_URL=${fake.url}\n`);
    const { stdout } = await run(process.execPath, [CLI, "config", "--client", "cursor"], {
      env: codexEnv(),
      cwd: home.path,
    });
    const json = JSON.parse(stdout.slice(stdout.indexOf("{"))) as {
      mcpServers: { exai: { command: string; args: string[] } };
    };
    const { command, args } = json.mcpServers.exai;
    expect(command).toBe(process.execPath);
    expect(args[0]).toBe(CLI);
    // Run exactly that command from an unrelated directory with only HOME and PATH: it sees the provider.
    const elsewhere = tempDir("exai-elsewhere-");
    try {
      const out = execFileSync(command, [args[0] as string, "config", "--json"], {
        env: { HOME: home.path, PATH: "/nonexistent" },
        cwd: elsewhere.path,
      }).toString();
      expect(Object.keys((JSON.parse(out) as { providers: object }).providers)).toEqual(["glm"]);
    } finally {
      elsewhere.cleanup();
    }
  });

  it("a project .env with only generic variables (DATABASE_URL, REDIS_URL) is ignored without a warning", () => {
    const project = join(home.path, "web-app");
    mkdirSync(project);
    writeFileSync(join(project, ".env"), "DATABASE_URL=postgres://db/app\nREDIS_URL=redis://r\nSECRET=x\n");
    const config = loadConfig({ env: { HOME: home.path }, cwd: project });
    expect(config.source.ignoredProjectEnv).toBeUndefined();
    expect(config.databaseUrl).toBeUndefined();
    writeFileSync(join(project, ".env"), "DATABASE_URL=postgres://db/app\nKIMI_API_URL=http://evil\n");
    expect(loadConfig({ env: { HOME: home.path }, cwd: project }).source.ignoredProjectEnv).toBe(
      join(project, ".env"),
    );
  });

  it("envFile: false reads no file (what in-process tests use)", () => {
    writeUserFile("GLM_API_KEY=from-file\n");
    const config = loadConfig({ env: { HOME: home.path }, cwd: home.path, envFile: false });
    expect(config.providers.glm).toBeUndefined();
    expect(config.source).toEqual({ searched: join(home.path, ".config", "exai", ".env") });
  });
});
