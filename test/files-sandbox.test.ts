import { mkdir, mkdtemp, realpath, rm, symlink, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";

import { afterEach, beforeEach, describe, expect, it } from "vitest";

import { createFileSandbox, isInsideRoot, isSecretPath, type FileSandbox } from "../src/files/sandbox.js";
import { rejection } from "./support/harness.js";

let base: string;
let root: string;
let outside: string;
let sandbox: FileSandbox;

beforeEach(async () => {
  // realpath: os.tmpdir() is itself a symlink on some systems (macOS /var → /private/var).
  base = await realpath(await mkdtemp(path.join(os.tmpdir(), "exai-sandbox-")));
  root = path.join(base, "project");
  outside = path.join(base, "outside");
  await mkdir(path.join(root, "src"), { recursive: true });
  await mkdir(outside);
  await writeFile(path.join(root, "src", "a.ts"), "export const a = 1;\n");
  await writeFile(path.join(outside, "secret-plans.txt"), "not for the model\n");
  sandbox = createFileSandbox({ allowedRoots: [root] });
});

afterEach(async () => {
  await rm(base, { recursive: true, force: true });
});

describe("createFileSandbox().resolve", () => {
  it("returns the realpath of a file inside an allowed root", async () => {
    const file = path.join(root, "src", "a.ts");
    await expect(sandbox.resolve(file, "files[0]")).resolves.toBe(file);
  });

  it("accepts the root directory itself", async () => {
    await expect(sandbox.resolve(root, "files[0]")).resolves.toBe(root);
  });

  it("refuses a relative path with INVALID_ARGUMENT naming the field and value", async () => {
    const error = await rejection(sandbox.resolve("src/a.ts", "relevant_files[0]"));
    expect(error.code).toBe("INVALID_ARGUMENT");
    expect(error.message).toBe(
      'relevant_files[0]: "src/a.ts" is not an absolute path; pass the full path, e.g. /home/me/project/src/a.ts',
    );
    expect(error.details).toEqual({ field: "relevant_files[0]", path: "src/a.ts" });
  });

  it("refuses an empty path and a non-string", async () => {
    const empty = await rejection(sandbox.resolve("", "files[1]"));
    expect(empty.code).toBe("INVALID_ARGUMENT");
    expect(empty.message).toContain("files[1]: the path is empty");

    const notString = await rejection(sandbox.resolve(42 as unknown as string, "files[2]"));
    expect(notString.code).toBe("INVALID_ARGUMENT");
    expect(notString.message).toBe("files[2]: expected an absolute path string, got number");
  });

  it("refuses a missing path with INVALID_ARGUMENT 'does not exist'", async () => {
    const missing = path.join(root, "src", "nope.ts");
    const error = await rejection(sandbox.resolve(missing, "files[0]"));
    expect(error.code).toBe("INVALID_ARGUMENT");
    expect(error.message).toContain(`files[0]: "${missing}" does not exist`);
    expect(error.details).toEqual({ field: "files[0]", path: missing, missing: true });
  });

  it("refuses a path outside every root, listing the roots and how to change them", async () => {
    const file = path.join(outside, "secret-plans.txt");
    const error = await rejection(sandbox.resolve(file, "files[3]"));
    expect(error.code).toBe("FILE_ACCESS_DENIED");
    expect(error.message).toContain(`files[3]: "${file}" is outside the allowed roots`);
    expect(error.message).toContain(root);
    expect(error.message).toContain("EXAI_ALLOWED_ROOTS");
    expect(error.details).toMatchObject({ field: "files[3]", path: file, allowed_roots: [root] });
  });

  it("refuses ../ escapes after normalisation", async () => {
    const escape = `${root}/src/../../outside/secret-plans.txt`;
    const error = await rejection(sandbox.resolve(escape, "files[0]"));
    expect(error.code).toBe("FILE_ACCESS_DENIED");
  });

  it("checks containment segment by segment: /x/project-evil is not inside /x/project", async () => {
    const sibling = `${root}-evil`;
    await mkdir(sibling);
    await writeFile(path.join(sibling, "a.ts"), "x\n");
    const error = await rejection(sandbox.resolve(path.join(sibling, "a.ts"), "files[0]"));
    expect(error.code).toBe("FILE_ACCESS_DENIED");

    expect(isInsideRoot("/a/bc", "/a/b")).toBe(false);
    expect(isInsideRoot("/a/b", "/a/b")).toBe(true);
    expect(isInsideRoot("/a/b/c", "/a/b")).toBe(true);
    expect(isInsideRoot("/a/b/..c", "/a/b")).toBe(true);
    expect(isInsideRoot("/a", "/a/b")).toBe(false);
    expect(isInsideRoot("/anything", "/")).toBe(true);
  });

  it("resolves symlinks before the root check: a link inside the root to a file outside is refused", async () => {
    const link = path.join(root, "src", "innocent.txt");
    await symlink(path.join(outside, "secret-plans.txt"), link);
    const error = await rejection(sandbox.resolve(link, "files[0]"));
    expect(error.code).toBe("FILE_ACCESS_DENIED");
    expect(error.message).toContain(`resolves to ${path.join(outside, "secret-plans.txt")}`);
  });

  it("follows a symlink that stays inside the root and returns the target", async () => {
    const link = path.join(root, "link.ts");
    await symlink(path.join(root, "src", "a.ts"), link);
    await expect(sandbox.resolve(link, "files[0]")).resolves.toBe(path.join(root, "src", "a.ts"));
  });

  it("resolves the roots themselves with realpath at creation", async () => {
    const rootLink = path.join(base, "project-link");
    await symlink(root, rootLink);
    const viaLink = createFileSandbox({ allowedRoots: [rootLink, root] });
    expect(viaLink.allowedRoots).toEqual([root]);
    await expect(viaLink.resolve(path.join(rootLink, "src", "a.ts"), "files[0]")).resolves.toBe(
      path.join(root, "src", "a.ts"),
    );
  });

  it.each([
    [".env", ".env*"],
    [".env.local", ".env*"],
    [".env.example", ".env*"],
    ["x.pem", "*.pem"],
    ["server.key", "*.key"],
    ["id_rsa", "id_rsa*"],
    ["id_ed25519.pub", "id_ed25519*"],
    [".npmrc", ".npmrc"],
    [".git/config", ".git/ internals"],
    [".git", ".git/ internals"],
  ])("refuses the secret %s with FILE_ACCESS_DENIED", async (relative, rule) => {
    const file = path.join(root, relative);
    if (relative.startsWith(".git")) await mkdir(path.join(root, ".git"), { recursive: true });
    if (relative !== ".git") await writeFile(file, "SECRET=1\n");
    const error = await rejection(sandbox.resolve(file, "files[0]"));
    expect(error.code).toBe("FILE_ACCESS_DENIED");
    expect(error.message).toBe(
      `files[0]: "${file}" is a secret file (${rule}); exai never sends secrets to a model. ` +
        `Remove it from the request.`,
    );
    expect(error.details).toEqual({ field: "files[0]", path: file, secret: "name", rule });
  });

  it("refuses a secret reached through a symlink, and a symlink named like a secret", async () => {
    await writeFile(path.join(root, ".env"), "KEY=1\n");
    const toSecret = path.join(root, "config.txt");
    await symlink(path.join(root, ".env"), toSecret);
    expect((await rejection(sandbox.resolve(toSecret, "files[0]"))).code).toBe("FILE_ACCESS_DENIED");

    const namedSecret = path.join(root, "src", ".env.production");
    await symlink(path.join(root, "src", "a.ts"), namedSecret);
    expect((await rejection(sandbox.resolve(namedSecret, "files[1]"))).code).toBe("FILE_ACCESS_DENIED");
  });

  it("denies everything when no roots are configured", async () => {
    const empty = createFileSandbox({ allowedRoots: [] });
    const error = await rejection(empty.resolve(path.join(root, "src", "a.ts"), "files[0]"));
    expect(error.code).toBe("FILE_ACCESS_DENIED");
    expect(error.message).toContain("no directory is allowed");
  });
});

describe("createFileSandbox", () => {
  it("withRoots returns a copy with other roots and leaves the original alone", async () => {
    const other = sandbox.withRoots([outside]);
    expect(other.allowedRoots).toEqual([outside]);
    expect(sandbox.allowedRoots).toEqual([root]);
    const file = path.join(outside, "secret-plans.txt");
    await expect(other.resolve(file, "files[0]")).resolves.toBe(file);
    expect((await rejection(sandbox.resolve(file, "files[0]"))).code).toBe("FILE_ACCESS_DENIED");
  });

  it("rejects a relative root with CONFIG_INVALID", () => {
    expect(() => createFileSandbox({ allowedRoots: ["project"] })).toThrowError(
      expect.objectContaining({ code: "CONFIG_INVALID" }),
    );
  });

  it("keeps a root that does not exist yet", () => {
    const future = path.join(base, "later");
    expect(createFileSandbox({ allowedRoots: [future] }).allowedRoots).toEqual([future]);
  });
});

describe("isSecretPath", () => {
  it.each([
    ["/p/.env", true],
    ["/p/.ENV.local", true],
    ["/p/.envrc", true],
    ["/p/certs/server.pem", true],
    ["/p/tls.key", true],
    ["/home/me/.ssh/id_ecdsa", true],
    ["/p/.pypirc", true],
    ["/p/.netrc", true],
    ["/p/.git/hooks/pre-commit", true],
    ["/p/src/environment.ts", false],
    ["/p/.gitignore", false],
    ["/p/.github/workflows/ci.yml", false],
    ["/p/src/keys.ts", false],
    ["/p/src/.git-blame-ignore-revs", false],
  ])("%s → %s", (file, expected) => {
    expect(isSecretPath(file)).toBe(expected);
  });
});
