/**
 * Every provider request of a tool goes through the call's provider path: it takes a slot of the
 * provider's cap (EXAI_WS_<P>_MAX_INFLIGHT), runs under the call's deadline, is retried when
 * idempotent, and its attempts count in the CALL SUMMARY (result summary and JSONL tool-call log).
 * In-process runtimes against the fake provider over real HTTP.
 */
import { readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { RecordedRequest } from "../src/testing/fake-provider.js";
import { REPO_ROOT, startTestRuntime, tempDir, type TestRuntime } from "./support/harness.js";

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function start(env: Record<string, string | undefined> = {}): Promise<TestRuntime> {
  const test = await startTestRuntime({ TOOL_PROFILE: "full", ...env });
  cleanups.push(() => test.close());
  return test;
}

/** The most requests matching `filter` the fake was serving at the same moment. */
function peakConcurrency(
  requests: readonly RecordedRequest[],
  filter: (request: RecordedRequest) => boolean,
) {
  const events = requests.filter(filter).flatMap((request) => {
    const end = request.completedAt ?? request.abortedAt;
    if (end === undefined) throw new Error(`request ${request.id} ${request.path} never ended`);
    return [
      { at: request.receivedAt, delta: 1 },
      { at: end, delta: -1 },
    ];
  });
  // Ends sort before starts at the same instant: back-to-back requests do not overlap.
  events.sort((a, b) => a.at - b.at || a.delta - b.delta);
  let current = 0;
  let peak = 0;
  for (const event of events) {
    current += event.delta;
    peak = Math.max(peak, current);
  }
  return peak;
}

const isSearch = (request: RecordedRequest) => request.method === "POST" && request.path === "/web_search";

/** The JSONL tool-call log records (appended asynchronously: waits for `count` of them). */
async function toolCallLog(test: TestRuntime, count: number): Promise<Array<Record<string, unknown>>> {
  const started = performance.now();
  for (;;) {
    const text = await readFile(test.runtime.services.toolCallLogPath, "utf8").catch(() => "");
    const records = text
      .split("\n")
      .filter((line) => line.trim() !== "")
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    if (records.length >= count) return records;
    if (performance.now() - started > 3000)
      throw new Error(`tool-call log has ${records.length} of ${count}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe("the provider cap applies to tools without a model", () => {
  it("EXAI_WS_GLM_MAX_INFLIGHT=1, in-process rule (OVER_CAPACITY retried inside the deadline): both glm_web_search calls succeed one after the other", async () => {
    const test = await start({ EXAI_WS_GLM_MAX_INFLIGHT: "1" });
    test.fake.enqueue({ match: { path: "/web_search" }, delayMs: 300, times: 2 });
    const [first, second] = await Promise.all(
      ["node streams", "undici pools"].map((query) =>
        test.runtime.executor.call({
          tool: "glm_web_search",
          arguments: { query },
          retryOverCapacity: true,
        }),
      ),
    );
    expect(first?.ok && second?.ok).toBe(true);
    expect(test.fake.requests.filter(isSearch)).toHaveLength(2);
    expect(peakConcurrency(test.fake.requests, isSearch)).toBe(1);
    // One of them waited for the slot at admission.
    const queued = Math.max(first?.summary.queue_ms ?? 0, second?.summary.queue_ms ?? 0);
    expect(queued).toBeGreaterThan(0);
    expect(test.runtime.admission.snapshot().provider.glm?.inflight).toBe(0);
  });

  it("EXAI_WS_GLM_MAX_INFLIGHT=1, daemon rule (no in-process retry): the second glm_web_search is refused with OVER_CAPACITY naming the variable", async () => {
    const test = await start({ EXAI_WS_GLM_MAX_INFLIGHT: "1" });
    test.fake.enqueue({ match: { path: "/web_search" }, delayMs: 400, times: 2 });
    const first = test.runtime.executor.call({ tool: "glm_web_search", arguments: { query: "first" } });
    await test.fake.waitForRequests(1);
    const second = await test.runtime.executor.call({
      tool: "glm_web_search",
      arguments: { query: "second" },
    });
    expect(second.ok).toBe(false);
    expect(second.error?.code).toBe("OVER_CAPACITY");
    expect(second.error?.message).toContain("EXAI_WS_GLM_MAX_INFLIGHT");
    expect(second.summary.attempts).toBe(0);
    expect((await first).ok).toBe(true);
    expect(test.fake.requests.filter(isSearch)).toHaveLength(1);
  });

  it("a call's own parallel requests queue behind its slot: 3 files extracted with EXAI_WS_KIMI_MAX_INFLIGHT=1 never put 2 requests at Kimi at once", async () => {
    const test = await start({ EXAI_WS_KIMI_MAX_INFLIGHT: "1" });
    const dir = tempDir("exai-files-");
    cleanups.push(dir.cleanup);
    const paths = await Promise.all(
      ["a.txt", "b.txt", "c.txt"].map(async (name) => {
        const path = join(dir.path, name);
        await writeFile(path, `contents of ${name}\n`);
        return path;
      }),
    );
    test.fake.enqueue({ match: { path: "/files" }, delayMs: 100, times: 3 });
    const outcome = await test.runtime.executor.call({
      tool: "kimi_upload_and_extract",
      arguments: { files: paths },
    });
    expect(outcome.ok).toBe(true);
    const kimiRequests = (request: RecordedRequest) => request.path.startsWith("/files");
    // 3 uploads + 3 content reads, one at a time.
    expect(test.fake.requests.filter(kimiRequests)).toHaveLength(6);
    expect(peakConcurrency(test.fake.requests, kimiRequests)).toBe(1);
    expect(outcome.summary.attempts).toBe(6);
    expect(test.runtime.admission.snapshot().provider.kimi?.inflight).toBe(0);
  });
});

describe("the CALL SUMMARY counts every provider request", () => {
  it("glm_web_search, health, kimi_upload_and_extract and kimi_manage_files list report their attempts, provider and endpoints", async () => {
    const test = await start();
    const dir = tempDir("exai-files-");
    cleanups.push(dir.cleanup);
    const path = join(dir.path, "notes.txt");
    await writeFile(path, "meeting notes\n");
    // One 503 on GET /files: the list is idempotent, so it is retried (2 attempts).
    test.fake.enqueue({ match: { path: "/files" }, fault: { kind: "status", status: 503 }, times: 1 });

    const calls: Array<[string, Record<string, unknown>]> = [
      ["glm_web_search", { query: "exai" }],
      ["health", {}],
      ["kimi_manage_files", { action: "list" }],
      ["kimi_upload_and_extract", { files: [path] }],
    ];
    const outcomes = [];
    for (const [tool, args] of calls) {
      const outcome = await test.runtime.executor.call({ tool, arguments: args });
      expect(outcome.ok, `${tool}: ${JSON.stringify(outcome.error)}`).toBe(true);
      outcomes.push(outcome);
    }
    const [search, health, list, extract] = outcomes.map((outcome) => outcome.summary);
    expect(search).toMatchObject({ attempts: 1, provider: "glm", endpoints: ["glm POST /web_search"] });
    // One GET /models per configured provider (GLM and Kimi).
    expect(health).toMatchObject({ attempts: 2 });
    expect([...(health?.endpoints ?? [])].sort()).toEqual(["glm GET /models", "kimi GET /models"]);
    expect(list).toMatchObject({ attempts: 2, provider: "kimi", endpoints: ["kimi GET /files"] });
    expect(extract).toMatchObject({
      attempts: 2,
      provider: "kimi",
      endpoints: ["kimi POST /files", "kimi GET /files/{id}/content"],
    });

    const records = await toolCallLog(test, calls.length);
    for (const [index, [tool]] of calls.entries()) {
      const record = records.find((entry) => entry.tool === tool);
      expect(record?.attempts, tool).toBe(outcomes[index]?.summary.attempts);
      expect(record?.attempts as number, tool).toBeGreaterThan(0);
    }
  });

  it("a failed provider request still counts its attempts", async () => {
    const test = await start({ PROVIDER_MAX_RETRIES: "1" });
    test.fake.enqueue({ match: { path: "/web_search" }, fault: { kind: "status", status: 500 }, times: 5 });
    const outcome = await test.runtime.executor.call({
      tool: "glm_web_search",
      arguments: { query: "down" },
    });
    expect(outcome.error?.code).toBe("PROVIDER_ERROR");
    expect(outcome.summary).toMatchObject({ attempts: 2, provider: "glm", outcome: "error" });
    expect(test.fake.requests.filter(isSearch)).toHaveLength(2);
  });
});

describe("tools reach providers only through their context", () => {
  it("no tool imports the provider set or the Provider interface, or calls a provider method itself", async () => {
    const dir = join(REPO_ROOT, "src", "tools");
    const offenders: string[] = [];
    for (const name of (await readdir(dir)).filter((file) => file.endsWith(".ts"))) {
      const text = await readFile(join(dir, name), "utf8");
      if (/import[^;]*\bProviders?\b[^;]*from "\.\.\/providers\//.test(text))
        offenders.push(`${name}: imports the providers`);
      if (/\.(requestJson|chat|previewBody)\s*(<[^>(]*>)?\(/.test(text))
        offenders.push(`${name}: calls a provider method`);
    }
    expect(offenders).toEqual([]);
  });
});
