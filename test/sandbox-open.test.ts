/**
 * Every read goes through one sandboxed open (SPEC §4.4): FIFOs and devices never block or
 * allocate, credential files are refused by name and private keys by content, and a path swapped
 * between the check and the read never yields a file outside the roots. Real files in temp dirs.
 */
import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { mkdir, mkdtemp, realpath, rm, symlink, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";

import { afterEach, beforeEach, describe, expect, it } from "vitest";

import { ExaiError } from "../src/base/errors.js";
import { openSandboxed } from "../src/files/open.js";
import { createFileReader, type FileReader } from "../src/files/reader.js";
import { createFileSandbox, SECRET_RULES } from "../src/files/sandbox.js";
import { rejection, startTestRuntime } from "./support/harness.js";

let base: string;
let root: string;
let outside: string;
let reader: FileReader;
const children: ChildProcess[] = [];

async function write(relative: string, content: string | Buffer): Promise<string> {
  const file = path.join(root, relative);
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, content);
  return file;
}

beforeEach(async () => {
  base = await realpath(await mkdtemp(path.join(os.tmpdir(), "exai-sandbox-open-")));
  root = path.join(base, "project");
  outside = path.join(base, "outside");
  await mkdir(root);
  await mkdir(outside);
  reader = createFileReader({ sandbox: createFileSandbox({ allowedRoots: [root] }) });
});

afterEach(async () => {
  for (const child of children.splice(0)) {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGKILL");
      await exited;
    }
  }
  await rm(base, { recursive: true, force: true });
});

describe("special files as .gitignore", () => {
  it("a FIFO named .gitignore blocks nothing: expansions and other reads finish, the FIFO is listed", async () => {
    await write("src/a.ts", "export const a = 1;\n");
    await write("other.txt", "other\n");
    execFileSync("mkfifo", [path.join(root, "src", ".gitignore")]);
    execFileSync("mkfifo", [path.join(root, ".gitignore")]);

    const started = performance.now();
    // More expansions at once than the libuv pool has threads (4): a blocking open of the FIFO
    // would hold every thread, and the read below would never finish.
    const expansions = await Promise.all(
      Array.from({ length: 6 }, () => reader.expandDetailed([root], "files")),
    );
    const other = await reader.read(path.join(root, "other.txt"));
    const elapsed = performance.now() - started;

    expect(elapsed).toBeLessThan(2000);
    expect(other.text).toContain("other");
    for (const expansion of expansions) {
      expect(expansion.files).toEqual([path.join(root, "other.txt"), path.join(root, "src", "a.ts")]);
      expect(expansion.skipped.map((item) => item.path)).toEqual([
        path.join(root, ".gitignore"),
        path.join(root, "src", ".gitignore"),
      ]);
      expect(expansion.skipped[0]?.reason).toMatch(/\.gitignore not applied: .*is a FIFO/);
    }
    // Named directly, a FIFO is refused at once, not opened for a blocking read.
    const error = await rejection(reader.read(path.join(root, "src", ".gitignore")));
    expect(error.code).toBe("INVALID_ARGUMENT");
    expect(error.message).toContain("is a FIFO (named pipe); only regular files are read");
  }, 10_000);

  it.each([
    ["the project root", () => root],
    ["/", () => "/"],
  ])(
    "a .gitignore symlinked to /dev/zero costs no memory (roots: %s)",
    async (_label, rootsOf) => {
      const wide = createFileReader({ sandbox: createFileSandbox({ allowedRoots: [rootsOf()] }) });
      await write("src/a.ts", "a\n");
      await symlink("/dev/zero", path.join(root, "src", ".gitignore"));
      const before = process.memoryUsage().rss;
      for (let round = 0; round < 5; round++) {
        const { files, skipped } = await wide.expandDetailed([root], "files");
        expect(files).toEqual([path.join(root, "src", "a.ts")]);
        expect(skipped).toHaveLength(1);
        expect(skipped[0]?.path).toBe(path.join(root, "src", ".gitignore"));
      }
      expect(process.memoryUsage().rss - before).toBeLessThan(50 * 1024 * 1024);
    },
    10_000,
  );

  it("a .gitignore over 256 KiB is not applied and is listed", async () => {
    await write("src/a.log", "noise\n");
    await write("src/.gitignore", `*.log\n${"#".repeat(300 * 1024)}\n`);
    const { files, skipped } = await reader.expandDetailed([root], "files");
    expect(files).toContain(path.join(root, "src", "a.log"));
    expect(skipped[0]?.reason).toMatch(/\.gitignore not applied: .* exceeds the 262.1 KB limit/);
  });

  it("caps a /proc file whose size reads 0 at the purpose's limit", async () => {
    const file = await openSandboxed("/proc/self/status", {
      purpose: "gitignore",
      roots: ["/"],
      maxBytes: 16,
      field: "files[0]",
    }).catch((error: unknown) => error);
    // /proc is refused by name; were it not, the bounded read would stop at 16 bytes.
    expect(ExaiError.is(file) && file.code).toBe("FILE_ACCESS_DENIED");
  });
});

describe("credential files", () => {
  const credentialFiles = [
    ".git-credentials",
    ".aws/credentials",
    ".ssh/id_dsa",
    "keys/id_dsa",
    "keys/id_ecdsa",
    "keys/id_ecdsa_sk.pub",
    "keys/id_ed25519",
    "keys/id_ed25519.pub",
    "certs/client.p12",
    "certs/client.pfx",
    "android/release.keystore",
    "java/trust.jks",
    ".docker/config.json",
    ".kube/config",
    ".pgpass",
    ".netrc",
    "gcp/credentials.json",
    ".env",
    ".env.production",
    "certs/server.pem",
    "certs/tls.key",
    "keys/id_rsa",
    ".npmrc",
  ];

  it.each(credentialFiles)(
    "refuses %s named directly with FILE_ACCESS_DENIED naming the path and rule",
    async (relative) => {
      const file = await write(relative, "user=me password=hunter2\n");
      const error = await rejection(reader.read(file));
      expect(error.code).toBe("FILE_ACCESS_DENIED");
      expect(error.message).toContain(JSON.stringify(file));
      expect(error.message).toMatch(/is a secret file \(.+\); exai never sends secrets to a model/);
      const expanded = await rejection(reader.expand([file], "files"));
      expect(expanded.message).toMatch(/^files\[0\]: /);
    },
  );

  it("skips every credential file while expanding a directory and lists each as skipped", async () => {
    for (const relative of credentialFiles) await write(relative, "user=me password=hunter2\n");
    await write("src/app.ts", "app\n");
    const { files, skipped } = await reader.expandDetailed([root], "files");
    expect(files).toEqual([path.join(root, "src", "app.ts")]);
    const listed = skipped.map((item) => item.path);
    for (const relative of credentialFiles) {
      // A secret directory (.ssh/) is listed once, as the directory.
      const expected = relative.startsWith(".ssh/") ? path.join(root, ".ssh") : path.join(root, relative);
      expect(listed).toContain(expected);
    }
    for (const item of skipped)
      expect(item.reason).toMatch(/^secret (file|directory) \(.+\); not sent to the model$/);
  });

  it("documents the rules it applies", () => {
    for (const rule of [
      ".git-credentials",
      ".aws/credentials",
      "id_dsa*",
      "*.p12",
      ".kube/config",
      ".env*",
    ]) {
      expect(SECRET_RULES).toContain(rule);
    }
  });
});

describe("private keys by content", () => {
  const headers = [
    "-----BEGIN OPENSSH PRIVATE KEY-----",
    "-----BEGIN RSA PRIVATE KEY-----",
    "-----BEGIN ENCRYPTED PRIVATE KEY-----",
    "-----BEGIN PRIVATE KEY-----",
    "-----BEGIN EC PRIVATE KEY-----",
    "-----BEGIN PGP PRIVATE KEY BLOCK-----",
  ];

  it.each(headers)("refuses an innocently named file holding %s", async (header) => {
    const file = await write("docs/notes.txt", `deploy notes\n\n${header}\nb3BlbnNzaC1rZXktdjEAAAAA\n`);
    const error = await rejection(reader.read(file));
    expect(error.code).toBe("FILE_ACCESS_DENIED");
    expect(error.message).toBe(
      `path: ${JSON.stringify(file)} is a secret: it holds a private key block (-----BEGIN … PRIVATE KEY-----); ` +
        `exai never sends secrets to a model. Remove it from the request.`,
    );
    // Named in `files`, it is refused at expansion with the field's name.
    const named = await rejection(reader.expand([file], "files"));
    expect(named.code).toBe("FILE_ACCESS_DENIED");
    expect(named.message).toMatch(/^files\[0\]: .* holds a private key block/);
  });

  it("lists a private key found in a directory as skipped and embeds the rest", async () => {
    const key = await write("docs/deploy.txt", "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n");
    const readme = await write("docs/README.md", "# docs\n");
    const files = await reader.expand([root], "files");
    const embedded = await reader.embed(files, { tokenBudget: 10_000, countTokens: (text) => text.length });
    expect(embedded.included).toEqual([readme]);
    expect(embedded.text).not.toContain("OPENSSH");
    expect(embedded.skipped).toEqual([
      { path: key, reason: expect.stringMatching(/holds a private key block/) },
    ]);
  });

  it("reads public keys and certificates", async () => {
    const file = await write(
      "certs/ca.txt",
      "-----BEGIN PUBLIC KEY-----\nAAAA\n-----BEGIN CERTIFICATE-----\n",
    );
    await expect(reader.read(file)).resolves.toMatchObject({ lines: 3 });
  });
});

describe("symlink swap races", () => {
  const SECRET = "OUTSIDE-SECRET-CONTENT";
  const INSIDE = "inside content";
  /** Before the fix, about 1 read in 30 (file swap) and 1 in 400 (directory swap) leaked the secret. */
  const ROUNDS = 1500;

  /** Starts a process that swaps `script`'s paths in a tight loop until killed. */
  function swapper(script: string, ...args: string[]): ChildProcess {
    const child = spawn(process.execPath, ["-e", script, ...args], { stdio: "ignore" });
    children.push(child);
    return child;
  }

  async function readRepeatedly(
    file: string,
    rounds: number,
  ): Promise<{ contents: string[]; errors: string[] }> {
    const contents: string[] = [];
    const errors: string[] = [];
    for (let round = 0; round < rounds; round++) {
      try {
        contents.push((await reader.read(file)).text);
      } catch (error) {
        if (!ExaiError.is(error)) throw error;
        errors.push(error.code);
      }
    }
    return { contents, errors };
  }

  it("a file swapped with a symlink to a file outside the roots is never read through the link", async () => {
    const secret = path.join(outside, "secret.txt");
    await writeFile(secret, `${SECRET}\n`);
    const target = await write("data.txt", `${INSIDE}\n`);
    swapper(
      `const fs = require("node:fs");
       const [target, secret] = process.argv.slice(1);
       for (let i = 0; ; i++) {
         const link = target + ".link"; const file = target + ".file";
         try { fs.symlinkSync(secret, link); fs.renameSync(link, target); } catch {}
         try { fs.writeFileSync(file, ${JSON.stringify(`${INSIDE}\n`)}); fs.renameSync(file, target); } catch {}
       }`,
      target,
      secret,
    );
    const { contents, errors } = await readRepeatedly(target, ROUNDS);
    for (const text of contents) expect(text).not.toContain(SECRET);
    // The swap really raced the reads: some read the inside file, some met the outside one.
    expect(contents.length).toBeGreaterThan(0);
    expect(contents.length + errors.length).toBe(ROUNDS);
    expect(new Set(errors)).not.toContain("INTERNAL");
  }, 20_000);

  it("a directory on the path swapped with a symlink to outside the roots is never read through", async () => {
    await writeFile(path.join(outside, "data.txt"), `${SECRET}\n`);
    const directory = path.join(root, "dir");
    const file = await write("dir/data.txt", `${INSIDE}\n`);
    swapper(
      `const fs = require("node:fs");
       const [directory, outside] = process.argv.slice(1);
       for (;;) {
         try { fs.renameSync(directory, directory + ".real"); fs.symlinkSync(outside, directory); } catch {}
         try { fs.unlinkSync(directory); fs.renameSync(directory + ".real", directory); } catch {}
       }`,
      directory,
      outside,
    );
    const { contents, errors } = await readRepeatedly(file, ROUNDS);
    for (const text of contents) expect(text).not.toContain(SECRET);
    // The swap really raced the reads: some read the inside file, some met the outside one.
    expect(contents.length).toBeGreaterThan(0);
    expect(contents.length + errors.length).toBe(ROUNDS);
    expect(new Set(errors)).not.toContain("INTERNAL");
  }, 20_000);
});

describe("secrets through a tool", () => {
  it("chat with a directory lists its secrets as not included and sends none of them", async () => {
    const test = await startTestRuntime();
    try {
      await write("src/app.ts", "export const app = 1;\n");
      const env = await write(".env.local", "GLM_API_KEY=leaked-by-env\n");
      const cloud = await write(".aws/credentials", "aws_secret_access_key=leaked-by-aws\n");
      const key = await write("deploy/notes.txt", "-----BEGIN OPENSSH PRIVATE KEY-----\nleaked-by-key\n");
      const outcome = await test.runtime.executor.call({
        tool: "chat",
        arguments: { prompt: "Review this project", model: "glm-4.5", files: [root] },
      });
      expect(outcome.error).toBeUndefined();
      const skipped = (outcome.result?.files_skipped ?? []) as Array<{ path: string; reason: string }>;
      expect(skipped.map((item) => item.path).sort()).toEqual([cloud, key, env].sort());
      const sent = JSON.stringify(test.fake.chatRequests().map((request) => request.body));
      expect(sent).toContain("export const app = 1;");
      expect(sent).not.toMatch(/leaked-by-/);
    } finally {
      await test.close();
    }
  });

  it("an upload tool refuses a private key and a credential file, uploading nothing", async () => {
    const test = await startTestRuntime({ TOOL_PROFILE: "full" });
    try {
      const key = await write("deploy/notes.txt", "-----BEGIN RSA PRIVATE KEY-----\nleaked\n");
      const netrc = await write(".netrc", "machine example.com password leaked\n");
      for (const [file, pattern] of [
        [key, /holds a private key block/],
        [netrc, /is a secret file \(\.netrc\)/],
      ] as const) {
        const outcome = await test.runtime.executor.call({
          tool: "kimi_upload_and_extract",
          arguments: { files: [file] },
        });
        expect(outcome.error?.code).toBe("FILE_ACCESS_DENIED");
        expect(outcome.error?.message).toMatch(pattern);
        expect(outcome.error?.message).toContain(file);
      }
      expect(test.fake.requests).toEqual([]);
    } finally {
      await test.close();
    }
  });
});
