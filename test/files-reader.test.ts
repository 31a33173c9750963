import { mkdir, mkdtemp, realpath, rm, symlink, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";

import { afterEach, beforeEach, describe, expect, it } from "vitest";

import { ExaiError } from "../src/base/errors.js";
import { createFileReader, formatBytes, type FileReader } from "../src/files/reader.js";
import { createFileSandbox } from "../src/files/sandbox.js";

let base: string;
let root: string;
let reader: FileReader;

/** Writes files relative to `root`, creating directories as needed. */
async function writeTree(files: Record<string, string | Buffer>): Promise<void> {
  for (const [relative, content] of Object.entries(files)) {
    const file = path.join(root, relative);
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, content);
  }
}

function at(relative: string): string {
  return path.join(root, relative);
}

function block(file: string, body: string): string {
  return `--- BEGIN FILE: ${file} ---\n${body}\n--- END FILE: ${file} ---\n`;
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error("expected a rejection");
    },
    (reason: unknown) => reason,
  );
}

beforeEach(async () => {
  base = await realpath(await mkdtemp(path.join(os.tmpdir(), "exai-reader-")));
  root = path.join(base, "project");
  await mkdir(root);
  reader = createFileReader({ sandbox: createFileSandbox({ allowedRoots: [root] }) });
});

afterEach(async () => {
  await rm(base, { recursive: true, force: true });
});

describe("FileReader.expand", () => {
  beforeEach(async () => {
    await writeTree({
      ".gitignore": "*.log\nignored-dir/\n",
      "README.md": "# readme\n",
      "src/a.ts": "a\n",
      "src/b.ts": "b\n",
      "src/app.log": "noise\n",
      "src/.env.local": "TOKEN=1\n",
      "src/nested/.gitignore": "!keep.log\n",
      "src/nested/keep.log": "kept\n",
      "src/nested/drop.log": "dropped\n",
      "ignored-dir/x.ts": "x\n",
      "node_modules/pkg/index.js": "module.exports = 1;\n",
      "dist/out.js": "built\n",
      ".env": "SECRET=1\n",
      "server.pem": "-----BEGIN-----\n",
      ".git/config": "[core]\n",
    });
  });

  it("walks a directory in sorted order, honouring .gitignore and skipping vendored dirs and secrets", async () => {
    await expect(reader.expand([root], "files")).resolves.toEqual([
      at(".gitignore"),
      at("README.md"),
      at("src/a.ts"),
      at("src/b.ts"),
      at("src/nested/.gitignore"),
      at("src/nested/keep.log"),
    ]);
  });

  it("applies the .gitignore files above a subdirectory up to the allowed root", async () => {
    await expect(reader.expand([at("src")], "files")).resolves.toEqual([
      at("src/a.ts"),
      at("src/b.ts"),
      at("src/nested/.gitignore"),
      at("src/nested/keep.log"),
    ]);
  });

  it("keeps input order and de-duplicates", async () => {
    await expect(reader.expand([at("src/b.ts"), at("src/nested"), at("src/b.ts")], "files")).resolves.toEqual(
      [at("src/b.ts"), at("src/nested/.gitignore"), at("src/nested/keep.log")],
    );
  });

  it("includes a gitignored file or directory the user named explicitly", async () => {
    await expect(reader.expand([at("src/app.log"), at("ignored-dir")], "files")).resolves.toEqual([
      at("src/app.log"),
      at("ignored-dir/x.ts"),
    ]);
  });

  it("throws for a secret named explicitly, naming the indexed field", async () => {
    const error = await rejection(reader.expand([at("src/a.ts"), at(".env")], "files"));
    expect(error).toMatchObject({
      code: "FILE_ACCESS_DENIED",
      details: { field: "files[1]", path: at(".env") },
    });
  });

  it("skips symlinks that lead outside the root and does not follow directory links", async () => {
    const outside = path.join(base, "outside");
    await mkdir(outside);
    await writeFile(path.join(outside, "private.txt"), "private\n");
    await symlink(path.join(outside, "private.txt"), at("src/nested/escape.txt"));
    await symlink(at("src"), at("src/nested/loop"));
    await symlink(at("src/a.ts"), at("src/nested/alias.ts"));
    await expect(reader.expand([at("src/nested")], "files")).resolves.toEqual([
      at("src/nested/.gitignore"),
      at("src/a.ts"),
      at("src/nested/keep.log"),
    ]);
  });

  it("refuses a directory with more files than maxFilesPerDirectory", async () => {
    const small = createFileReader({
      sandbox: createFileSandbox({ allowedRoots: [root] }),
      maxFilesPerDirectory: 3,
    });
    const error = await rejection(small.expand([root], "files"));
    expect(error).toMatchObject({ code: "INVALID_ARGUMENT", details: { field: "files[0]", limit: 3 } });
    expect((error as ExaiError).message).toContain("contains more than 3 files");
  });

  it("stops when the signal is aborted", async () => {
    const controller = new AbortController();
    const reason = new ExaiError("CANCELLED", "client cancelled");
    controller.abort(reason);
    await expect(reader.expand([root], "files", controller.signal)).rejects.toBe(reason);
  });
});

describe("FileReader.read", () => {
  it("numbers lines in the exact block format", async () => {
    await writeTree({ "a.ts": "alpha\n  beta\n" });
    const result = await reader.read(at("a.ts"));
    expect(result).toEqual({
      path: at("a.ts"),
      text: `--- BEGIN FILE: ${at("a.ts")} ---\n   1│ alpha\n   2│   beta\n--- END FILE: ${at("a.ts")} ---\n`,
      lines: 2,
      bytes: 13,
    });
  });

  it("handles CRLF, a missing final newline, an empty file and widens numbers past 9999 lines", async () => {
    await writeTree({
      "crlf.txt": "one\r\ntwo",
      "empty.txt": "",
      "long.txt": "x\n".repeat(10_000),
    });
    expect((await reader.read(at("crlf.txt"))).text).toBe(block(at("crlf.txt"), "   1│ one\n   2│ two"));
    expect((await reader.read(at("empty.txt"))).text).toBe(block(at("empty.txt"), "(empty file)"));
    const long = await reader.read(at("long.txt"));
    expect(long.lines).toBe(10_000);
    expect(long.text).toContain("\n    1│ x\n");
    expect(long.text).toContain("\n10000│ x\n--- END FILE:");
  });

  it("replaces a file over maxFileBytes with a one-line placeholder", async () => {
    const small = createFileReader({
      sandbox: createFileSandbox({ allowedRoots: [root] }),
      maxFileBytes: 100,
    });
    await writeTree({ "big.txt": "y".repeat(150) });
    const result = await small.read(at("big.txt"));
    expect(result).toEqual({
      path: at("big.txt"),
      text: block(at("big.txt"), "(file omitted: 150 B exceeds the 100 B limit)"),
      lines: 0,
      bytes: 150,
      placeholder: "file omitted: 150 B exceeds the 100 B limit",
    });
  });

  it("replaces a binary file (NUL byte) with a placeholder", async () => {
    await writeTree({ "image.png": Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x00, 0x01]) });
    const result = await reader.read(at("image.png"));
    expect(result.text).toBe(block(at("image.png"), "(binary file omitted)"));
    expect(result.placeholder).toBe("binary file omitted");
  });

  it("validates the path through the sandbox", async () => {
    await writeTree({ ".env": "A=1\n", "src/a.ts": "a\n" });
    await expect(reader.read(at(".env"))).rejects.toMatchObject({ code: "FILE_ACCESS_DENIED" });
    await expect(reader.read("src/a.ts")).rejects.toMatchObject({ code: "INVALID_ARGUMENT" });
    await expect(reader.read(at("src"))).rejects.toMatchObject({ code: "INVALID_ARGUMENT" });
  });

  it("rejects with the signal's reason when aborted", async () => {
    await writeTree({ "a.ts": "a\n" });
    const controller = new AbortController();
    const reason = new ExaiError("TIMEOUT", "deadline reached", { details: { layer: "tool", budget_s: 1 } });
    controller.abort(reason);
    await expect(reader.read(at("a.ts"), controller.signal)).rejects.toBe(reason);
  });
});

describe("FileReader.embed", () => {
  const countTokens = (text: string): number => text.length;

  it("takes files in order within the budget, listing those that do not fit", async () => {
    await writeTree({ "a.ts": "a\n", "big.ts": "b".repeat(500), "c.ts": "c\n" });
    const blockA = block(at("a.ts"), "   1│ a");
    const blockBig = block(at("big.ts"), `   1│ ${"b".repeat(500)}`);
    const blockC = block(at("c.ts"), "   1│ c");
    const budget = blockA.length + blockC.length + 10;

    const result = await reader.embed([at("a.ts"), at("big.ts"), at("c.ts")], {
      tokenBudget: budget,
      countTokens,
    });
    expect(result).toEqual({
      text: blockA + blockC,
      included: [at("a.ts"), at("c.ts")],
      skipped: [
        {
          path: at("big.ts"),
          reason: `exceeds the remaining token budget (needs ${blockBig.length}, ${budget - blockA.length} left)`,
        },
      ],
      tokens: blockA.length + blockC.length,
    });
  });

  it("lists placeholder files as skipped with their reason and embeds each file once", async () => {
    await writeTree({ "a.ts": "a\n", "blob.bin": Buffer.from([0, 1, 2]) });
    const result = await reader.embed([at("a.ts"), at("blob.bin"), at("a.ts")], {
      tokenBudget: 10_000,
      countTokens,
    });
    expect(result.included).toEqual([at("a.ts")]);
    expect(result.skipped).toEqual([{ path: at("blob.bin"), reason: "binary file omitted" }]);
    expect(result.text).toBe(block(at("a.ts"), "   1│ a") + block(at("blob.bin"), "(binary file omitted)"));
  });

  it("stops between files when the signal is aborted", async () => {
    await writeTree({ "a.ts": "a\n", "b.ts": "b\n" });
    const controller = new AbortController();
    const reason = new ExaiError("CANCELLED", "client cancelled");
    let counted = 0;
    const abortingCounter = (text: string): number => {
      counted += 1;
      controller.abort(reason);
      return text.length;
    };
    await expect(
      reader.embed([at("a.ts"), at("b.ts")], {
        tokenBudget: 10_000,
        countTokens: abortingCounter,
        signal: controller.signal,
      }),
    ).rejects.toBe(reason);
    expect(counted).toBe(1);
  });
});

describe("formatBytes", () => {
  it.each([
    [0, "0 B"],
    [100, "100 B"],
    [1_500, "1.5 KB"],
    [999_999, "1 MB"],
    [1_000_000, "1 MB"],
    [1_400_000, "1.4 MB"],
    [2_500_000_000, "2.5 GB"],
  ])("%d bytes → %s", (bytes, expected) => {
    expect(formatBytes(bytes)).toBe(expected);
  });
});
