/**
 * precommit against a real temporary git repository: the staged diff reaches the expert, secrets
 * never do, and bad paths or refs are refused before git runs anything with them.
 */
import { execFileSync } from "node:child_process";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { RecordedRequest } from "../src/testing/fake-provider.js";
import { boundDiff, parseNameStatus } from "../src/tools/git.js";
import { PRECOMMIT_PROMPT } from "../src/tools/precommit.js";
import { startTestRuntime, tempDir, type TestRuntime } from "./support/harness.js";

let harness: TestRuntime | undefined;
const cleanups: Array<() => void> = [];
afterEach(async () => {
  await harness?.close();
  harness = undefined;
  for (const cleanup of cleanups.splice(0)) cleanup();
});

const git = (repo: string, ...args: string[]) =>
  execFileSync(
    "git",
    [
      "-C",
      repo,
      "-c",
      "user.email=test@example.com",
      "-c",
      "user.name=Test",
      "-c",
      "commit.gpgsign=false",
      ...args,
    ],
    { encoding: "utf8" },
  );

/** A repository with one commit, then a staged change, an unstaged change and a staged secret. */
function makeRepository(): string {
  const dir = tempDir("exai-precommit-");
  cleanups.push(dir.cleanup);
  const repo = dir.path;
  git(repo, "init", "-q", "-b", "main");
  writeFileSync(join(repo, "price.ts"), "export function price(n: number) {\n  return n * 2;\n}\n");
  writeFileSync(join(repo, "notes.md"), "# Notes\n");
  git(repo, "add", "-A");
  git(repo, "commit", "-q", "-m", "initial");
  writeFileSync(
    join(repo, "price.ts"),
    "export function price(n: number) {\n  return n * 2;\n}\nexport const STAGED_ADDED_LINE = 42;\n",
  );
  writeFileSync(join(repo, ".env"), "API_TOKEN=SUPER-SECRET-VALUE\n");
  git(repo, "add", "price.ts", ".env");
  writeFileSync(join(repo, "notes.md"), "# Notes\nUNSTAGED_ADDED_LINE\n");
  return repo;
}

async function call(args: Record<string, unknown>) {
  if (!harness) throw new Error("no runtime");
  return harness.runtime.executor.call({ tool: "precommit", arguments: args });
}

function userText(request: RecordedRequest | undefined): string {
  const body = request?.body as { messages?: Array<{ role: string; content: unknown }> } | undefined;
  return (body?.messages ?? [])
    .filter((message) => message.role === "user")
    .map((message) => String(message.content))
    .join("\n");
}

const base = { step: "Validate the pending change", total_steps: 2, findings: "Looked at the change" };

describe("precommit", () => {
  it("lists the changed files at each step and sends the diff (not the secret) to the expert at the end", async () => {
    harness = await startTestRuntime();
    const repo = makeRepository();
    const first = await call({ ...base, step_number: 1, next_step_required: true, path: repo });
    expect(first.ok).toBe(true);
    expect(first.result?.status).toBe("pause_for_validation");
    expect(first.result?.compared).toEqual(["staged", "unstaged"]);
    const files = first.result?.changed_files as Array<{
      path: string;
      status: string;
      source: string;
      secret?: boolean;
    }>;
    expect(files).toEqual(
      expect.arrayContaining([
        { path: "price.ts", status: "M", source: "staged" },
        { path: ".env", status: "A", source: "staged", secret: true },
        { path: "notes.md", status: "M", source: "unstaged" },
      ]),
    );
    expect(harness.fake.chatRequests()).toHaveLength(0);

    harness.fake.enqueue({
      reply: { content: '{"status":"validation_complete","verdict":"ready_to_commit"}' },
    });
    // path is given at step 1 only; the final step reuses it from the thread.
    const final = await call({
      ...base,
      step_number: 2,
      next_step_required: false,
      findings: "The change adds a constant",
      model: "glm-4.5-flash",
      continuation_id: first.result?.continuation_id,
    });
    expect(final.ok).toBe(true);
    expect(final.result?.status).toBe("calling_expert_analysis");
    expect(final.result?.expert_analysis).toMatchObject({ verdict: "ready_to_commit" });
    expect(final.result?.diff_note).toMatch(/Secret files changed.*\.env/);
    const [request] = harness.fake.chatRequests();
    const body = request?.body as { messages: Array<{ role: string; content: string }> };
    expect(body.messages[0]?.content).toBe(PRECOMMIT_PROMPT);
    const text = userText(request);
    expect(text).toContain("=== DIFF: git diff --cached ===");
    expect(text).toContain("+export const STAGED_ADDED_LINE = 42;");
    expect(text).toContain("+UNSTAGED_ADDED_LINE");
    expect(text).not.toContain("SUPER-SECRET-VALUE");
  });

  it("compare_to diffs the branch against the ref", async () => {
    harness = await startTestRuntime();
    const repo = makeRepository();
    git(repo, "checkout", "-q", "-b", "feature");
    git(repo, "commit", "-q", "-m", "feature work");
    harness.fake.enqueue({ reply: { content: "{}" } });
    const outcome = await call({
      ...base,
      total_steps: 1,
      step_number: 1,
      next_step_required: false,
      path: repo,
      compare_to: "main",
      model: "glm-4.5-flash",
    });
    expect(outcome.ok).toBe(true);
    expect(outcome.result?.compared).toEqual(["main...HEAD"]);
    const text = userText(harness.fake.chatRequests()[0]);
    expect(text).toContain("=== DIFF: git diff main...HEAD ===");
    expect(text).toContain("+export const STAGED_ADDED_LINE = 42;");
  });

  it("refuses a directory that is not a git repository, naming path and the value", async () => {
    harness = await startTestRuntime();
    const dir = tempDir("exai-not-a-repo-");
    cleanups.push(dir.cleanup);
    const outcome = await call({ ...base, step_number: 1, next_step_required: true, path: dir.path });
    expect(outcome.ok).toBe(false);
    expect(outcome.error?.code).toBe("INVALID_ARGUMENT");
    expect(outcome.error?.field).toBe("path");
    expect(outcome.error?.message).toContain(dir.path);
  });

  it("refuses a missing path at step 1 and a path outside the sandbox", async () => {
    harness = await startTestRuntime();
    const missing = await call({ ...base, step_number: 1, next_step_required: true });
    expect(missing.error?.code).toBe("INVALID_ARGUMENT");
    expect(missing.error?.field).toBe("path");
    const outside = await call({ ...base, step_number: 1, next_step_required: true, path: "/usr" });
    expect(outside.error?.code).toBe("FILE_ACCESS_DENIED");
    expect(outside.error?.field).toBe("path");
  });

  it("refuses option injection and unknown refs in compare_to before running a diff", async () => {
    harness = await startTestRuntime();
    const repo = makeRepository();
    const scratch = tempDir("exai-injection-");
    cleanups.push(scratch.cleanup);
    const target = join(scratch.path, "x");
    for (const compareTo of [`--output=${target}`, "main;rm -rf /", "-p"]) {
      const outcome = await call({
        ...base,
        step_number: 1,
        next_step_required: true,
        path: repo,
        compare_to: compareTo,
      });
      expect(outcome.error?.code).toBe("INVALID_ARGUMENT");
      expect(outcome.error?.field).toBe("compare_to");
      expect(outcome.error?.message).toContain(JSON.stringify(compareTo));
    }
    const unknown = await call({
      ...base,
      step_number: 1,
      next_step_required: true,
      path: repo,
      compare_to: "no-such-branch",
    });
    expect(unknown.error?.field).toBe("compare_to");
    expect(existsSync(target)).toBe(false);
  });

  it("bounds a large diff at whole-file sections, keeps later files that fit, and names those left out", () => {
    const section = (name: string, size: number) =>
      `diff --git a/${name} b/${name}\n--- a/${name}\n+++ b/${name}\n${"+x\n".repeat(size)}`;
    const diff = section("a.ts", 10) + section("b.ts", 1000) + section("c.ts", 10) + section("d.ts", 50);
    const bounded = boundDiff(diff, section("a.ts", 10).length + section("c.ts", 10).length + 5);
    expect(bounded.cut).toBe(true);
    expect(bounded.text).toBe(section("a.ts", 10) + section("c.ts", 10));
    expect(bounded.omitted).toEqual(["b.ts", "d.ts"]);
    const single = boundDiff(section("huge.ts", 1000), 200);
    expect(single.partial).toBe("huge.ts");
    expect(single.text.length).toBeLessThanOrEqual(200);
    expect(single.text.endsWith("\n")).toBe(true);
  });

  it("parses renames in git's NUL-separated name-status output", () => {
    expect(parseNameStatus("R100\0old.ts\0new.ts\0M\0a b.ts\0", "staged")).toEqual([
      { path: "new.ts", status: "R", source: "staged", from: "old.ts" },
      { path: "a b.ts", status: "M", source: "staged" },
    ]);
  });
});
