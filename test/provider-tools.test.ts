/**
 * Kimi and GLM tools, the full-profile extras, and web search through the model-calling tools —
 * in-process runtimes against the fake provider over real HTTP (multipart uploads, file contents,
 * the $web_search loop, the GLM search endpoint).
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { RecordedRequest } from "../src/testing/fake-provider.js";
import { startTestRuntime, tempDir, type TestRuntime } from "./support/harness.js";

const cleanups: Array<() => Promise<void> | void> = [];

async function start(env: Record<string, string | undefined> = {}): Promise<TestRuntime> {
  const test = await startTestRuntime({ TOOL_PROFILE: "full", ...env });
  cleanups.push(() => test.close());
  return test;
}

/** Writes files into a fresh temporary directory (inside the test sandbox roots). */
function files(contents: Record<string, string>): Record<string, string> {
  const dir = tempDir("exai-files-");
  cleanups.push(dir.cleanup);
  return Object.fromEntries(
    Object.entries(contents).map(([name, text]) => {
      const path = join(dir.path, name);
      writeFileSync(path, text);
      return [name, path];
    }),
  );
}

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function call(test: TestRuntime, tool: string, args: Record<string, unknown>) {
  return test.runtime.executor.call({ tool, arguments: args });
}

async function success(test: TestRuntime, tool: string, args: Record<string, unknown>) {
  const outcome = await call(test, tool, args);
  if (!outcome.ok) throw new Error(`${tool} failed: ${JSON.stringify(outcome.error)}`);
  return outcome.result as Record<string, unknown>;
}

const uploads = (test: TestRuntime) =>
  test.fake.requests.filter((request) => request.method === "POST" && request.path === "/files");

function body(request: RecordedRequest | undefined): Record<string, unknown> {
  return (request?.body ?? {}) as Record<string, unknown>;
}

function messagesOf(request: RecordedRequest | undefined): Array<Record<string, unknown>> {
  return (body(request).messages ?? []) as Array<Record<string, unknown>>;
}

describe("kimi_upload_and_extract", () => {
  it("uploads with purpose file-extract and returns each file's text as a system message", async () => {
    const test = await start();
    const paths = files({
      "notes.md": "# Notes\nThe answer is 42.\n",
      "copy.md": "# Notes\nThe answer is 42.\n",
    });
    const result = await success(test, "kimi_upload_and_extract", {
      files: [paths["notes.md"], paths["copy.md"]],
    });
    const out = result.files as Array<Record<string, unknown>>;
    expect(out).toHaveLength(2);
    expect(out[0]?.system_message).toEqual({ role: "system", content: "# Notes\nThe answer is 42.\n" });
    expect(out[0]?.filename).toBe("notes.md");
    // Same content twice: one upload, one file id.
    expect(uploads(test)).toHaveLength(1);
    expect(body(uploads(test)[0])).toMatchObject({ fields: { purpose: "file-extract" } });
    expect(out[1]?.file_id).toBe(out[0]?.file_id);
    expect(
      test.fake.requests.some((request) => request.path === `/files/${String(out[0]?.file_id)}/content`),
    ).toBe(true);
    // A second call reuses the recorded upload.
    const again = await success(test, "kimi_upload_and_extract", { files: [paths["notes.md"]] });
    expect((again.files as Array<Record<string, unknown>>)[0]?.reused_upload).toBe(true);
    expect(uploads(test)).toHaveLength(1);
  });

  it("refuses a path outside the sandbox and a secret, naming the field", async () => {
    const test = await start();
    const outside = await call(test, "kimi_upload_and_extract", { files: ["/etc/hostname"] });
    expect(outside.error?.code).toBe("FILE_ACCESS_DENIED");
    expect(outside.error?.message).toContain("files[0]");
    const secret = files({ ".env": "KEY=1" });
    const denied = await call(test, "kimi_upload_and_extract", { files: [secret[".env"]] });
    expect(denied.error?.code).toBe("FILE_ACCESS_DENIED");
    expect(uploads(test)).toHaveLength(0);
  });

  it("fails with NO_PROVIDER naming KIMI_API_KEY when Kimi is not configured", async () => {
    const test = await start({ KIMI_API_KEY: undefined });
    const paths = files({ "a.txt": "a" });
    const outcome = await call(test, "kimi_upload_and_extract", { files: [paths["a.txt"]] });
    expect(outcome.error?.code).toBe("NO_PROVIDER");
    expect(outcome.error?.message).toContain("KIMI_API_KEY");
  });
});

describe("kimi_multi_file_chat", () => {
  it("sends each file's extracted content as a system message, then the prompt", async () => {
    const test = await start();
    const paths = files({ "a.py": "def alpha(): pass\n", "b.py": "def beta(): pass\n" });
    const result = await success(test, "kimi_multi_file_chat", {
      prompt: "What do these files define?",
      files: [paths["a.py"], paths["b.py"]],
    });
    expect(result.content).toBe("fake reply from kimi-k2.6: What do these files define?");
    const [chat] = test.fake.chatRequests();
    const messages = messagesOf(chat);
    expect(messages.map((message) => message.role)).toEqual(["system", "system", "system", "user"]);
    expect(String(messages[1]?.content)).toContain("def alpha()");
    expect(String(messages[2]?.content)).toContain("def beta()");
    expect(body(chat).thinking).toEqual({ type: "disabled" });
    expect(result.metadata).toMatchObject({ model_used: "kimi-k2.6", provider_used: "kimi" });
  });

  it("answers resend_prompt for a prompt over 60,000 characters, without uploading", async () => {
    const test = await start();
    const paths = files({ "a.txt": "a" });
    const result = await success(test, "kimi_multi_file_chat", {
      prompt: "x".repeat(60_001),
      files: [paths["a.txt"]],
    });
    expect(result).toMatchObject({ status: "resend_prompt", field: "prompt" });
    expect(test.fake.requests).toHaveLength(0);
  });

  it("refuses a GLM model, naming the model field", async () => {
    const test = await start();
    const paths = files({ "a.txt": "a" });
    const outcome = await call(test, "kimi_multi_file_chat", {
      prompt: "hi",
      files: [paths["a.txt"]],
      model: "glm-4.5-flash",
    });
    expect(outcome.error?.code).toBe("INVALID_ARGUMENT");
    expect(outcome.error?.message).toMatch(/^model: /);
    expect(outcome.error?.message).toContain("kimi-k2.6");
  });
});

describe("kimi_intent_analysis", () => {
  it("parses a fenced JSON answer (normalising loose values)", async () => {
    const test = await start();
    test.fake.enqueue({
      reply: {
        content:
          'Here you go:\n```json\n{"intent":"fix a failing test","needs_websearch":"false","complexity":"Medium","suggested_tool":"debug","suggested_model":"kimi-k2.6"}\n```',
      },
    });
    const result = await success(test, "kimi_intent_analysis", { prompt: "my test fails after the upgrade" });
    expect(result.analysis).toEqual({
      intent: "fix a failing test",
      needs_websearch: false,
      complexity: "medium",
      suggested_tool: "debug",
      suggested_model: "kimi-k2.6",
    });
    expect(result.schema_valid).toBe(true);
    const system = String(messagesOf(test.fake.chatRequests()[0])[0]?.content);
    expect(system).toContain("suggested_tool");
  });

  it("returns {raw} when the model answers in prose", async () => {
    const test = await start();
    test.fake.enqueue({ reply: { content: "This looks like a debugging request." } });
    const result = await success(test, "kimi_intent_analysis", { prompt: "why does it crash?" });
    expect(result.analysis).toEqual({ raw: "This looks like a debugging request." });
    expect(result.schema_valid).toBe(false);
  });
});

describe("kimi_capture_headers", () => {
  it("returns the response headers of interest and sends the trace id, never credentials", async () => {
    const test = await start();
    const outcome = await call(test, "kimi_capture_headers", {});
    expect(outcome.ok).toBe(true);
    const result = outcome.result as Record<string, unknown>;
    const headers = result.headers as Record<string, Record<string, string>>;
    expect(headers.other?.["content-type"]).toContain("text/event-stream");
    expect(result.sent_request_id).toBe(outcome.traceId);
    expect(test.fake.chatRequests()[0]?.headers["x-request-id"]).toBe(outcome.traceId);
    expect(JSON.stringify(result).toLowerCase()).not.toContain("authorization");
    expect(JSON.stringify(result)).not.toContain("test-kimi-key");
  });
});

describe("kimi_chat_with_tools", () => {
  it("answers $web_search rounds server-side: the tool message echoes the call's arguments", async () => {
    const test = await start();
    const searchArguments = JSON.stringify({ query: "node 20 release date", usage: { total_tokens: 80 } });
    test.fake.enqueue({
      reply: { toolCalls: [{ id: "call_ws_1", name: "$web_search", arguments: searchArguments }] },
    });
    const result = await success(test, "kimi_chat_with_tools", {
      prompt: "When was Node 20 released?",
      use_websearch: true,
    });
    const [first, second] = test.fake.chatRequests();
    expect(test.fake.chatRequests()).toHaveLength(2);
    expect(body(first).tools).toEqual([{ type: "builtin_function", function: { name: "$web_search" } }]);
    expect(body(first).thinking).toEqual({ type: "disabled" });
    const messages = messagesOf(second);
    expect(messages.at(-2)).toMatchObject({ role: "assistant", tool_calls: [{ id: "call_ws_1" }] });
    expect(messages.at(-1)).toEqual({
      role: "tool",
      tool_call_id: "call_ws_1",
      name: "$web_search",
      content: searchArguments,
    });
    expect(body(second).tools).toEqual(body(first).tools);
    expect(result).toMatchObject({
      content: "fake reply from kimi-k2.6 after web search: When was Node 20 released?",
      finish_reason: "stop",
      tool_calls: [],
      web_search_rounds: 1,
    });
  });

  it("passes tools and tool_choice through and returns the caller's tool calls", async () => {
    const test = await start();
    test.fake.enqueue({
      reply: { toolCalls: [{ id: "call_1", name: "get_weather", arguments: '{"city":"Paris"}' }] },
    });
    const weather = {
      type: "function",
      function: {
        name: "get_weather",
        parameters: { type: "object", properties: { city: { type: "string" } } },
      },
    };
    const result = await success(test, "kimi_chat_with_tools", {
      messages: [{ role: "user", content: "Weather in Paris?" }],
      tools: [weather],
      tool_choice: "required",
    });
    const [request] = test.fake.chatRequests();
    expect(body(request).tools).toEqual([weather]);
    expect(body(request).tool_choice).toBe("required");
    expect(result).toMatchObject({
      finish_reason: "tool_calls",
      tool_calls: [{ id: "call_1", function: { name: "get_weather", arguments: '{"city":"Paris"}' } }],
      assistant_message: { role: "assistant", tool_calls: [{ id: "call_1" }] },
    });
    // The follow-up call with the tool result reaches Kimi as given.
    const followUp = await success(test, "kimi_chat_with_tools", {
      messages: [
        { role: "user", content: "Weather in Paris?" },
        result.assistant_message,
        { role: "tool", tool_call_id: "call_1", content: '{"temp_c":21}' },
      ],
      tools: [weather],
    });
    expect(followUp.finish_reason).toBe("stop");
    expect(messagesOf(test.fake.chatRequests()[1]).at(-1)).toEqual({
      role: "tool",
      tool_call_id: "call_1",
      content: '{"temp_c":21}',
    });
  });

  it("wants exactly one of prompt and messages, naming the field", async () => {
    const test = await start();
    const outcome = await call(test, "kimi_chat_with_tools", { tools: [] });
    expect(outcome.error?.code).toBe("INVALID_ARGUMENT");
    expect(outcome.error?.message).toContain("prompt");
    expect(outcome.error?.field).toBe("prompt");
  });
});

describe("web search through the model-calling tools", () => {
  it("chat with use_websearch on GLM sends the web_search tool and returns the results", async () => {
    const test = await start();
    const result = await success(test, "chat", {
      prompt: "latest Node LTS?",
      model: "glm-4.5-flash",
      use_websearch: true,
    });
    const [request] = test.fake.chatRequests();
    expect(body(request).tools).toEqual([
      {
        type: "web_search",
        web_search: { enable: true, search_engine: "search_pro_jina", search_result: true },
      },
    ]);
    expect(body(request).tool_choice).toBe("auto");
    expect((result.web_search as unknown[]).length).toBeGreaterThan(0);
  });

  it("chat with use_websearch on Kimi runs the $web_search loop to the final answer", async () => {
    const test = await start();
    const result = await success(test, "chat", {
      prompt: "latest Node LTS?",
      model: "kimi",
      use_websearch: true,
    });
    const requests = test.fake.chatRequests();
    expect(requests).toHaveLength(2);
    const firstCall = JSON.stringify(messagesOf(requests[1]).find((message) => message.role === "tool"));
    expect(firstCall).toContain("fake-search-1");
    expect(String(result.content)).toContain("after web search");
  });

  it("bounds a Kimi search that never ends by KIMI_MAX_SEARCH_ROUNDS", async () => {
    const test = await start();
    test.fake.enqueue({
      times: Infinity,
      reply: { toolCalls: [{ name: "$web_search", arguments: '{"query":"again"}' }] },
    });
    const outcome = await call(test, "chat", { prompt: "loop", model: "kimi", use_websearch: true });
    expect(outcome.error?.code).toBe("PROVIDER_ERROR");
    expect(outcome.error?.message).toContain("$web_search");
    expect(test.fake.chatRequests()).toHaveLength(4);
  });
});

describe("GLM tools", () => {
  it("glm_web_search posts to /web_search and returns the results", async () => {
    const test = await start();
    const result = await success(test, "glm_web_search", {
      query: "vitest 4 release notes",
      count: 3,
      search_recency_filter: "oneMonth",
    });
    const request = test.fake.requests.find((item) => item.path === "/web_search");
    expect(request?.method).toBe("POST");
    expect(request?.headers.authorization).toBe("Bearer test-glm-key");
    expect(body(request)).toEqual({
      search_engine: "search-prime",
      search_query: "vitest 4 release notes",
      count: 3,
      search_recency_filter: "oneMonth",
    });
    const results = result.results as Array<Record<string, unknown>>;
    expect(results).toHaveLength(3);
    expect(String(results[0]?.title)).toContain("vitest 4 release notes");
    expect(results[0]?.link).toMatch(/^https:\/\//);
  });

  it("glm_web_search refuses a blank query, naming the field", async () => {
    const test = await start();
    const outcome = await call(test, "glm_web_search", { query: "   " });
    expect(outcome.error?.code).toBe("INVALID_ARGUMENT");
    expect(outcome.error?.message).toContain("query");
    expect(test.fake.requests).toHaveLength(0);
  });

  it("glm_upload_file uploads once per content and purpose", async () => {
    const test = await start();
    const paths = files({ "spec.txt": "GLM file\n" });
    const first = await success(test, "glm_upload_file", { file: paths["spec.txt"] });
    const second = await success(test, "glm_upload_file", { file: paths["spec.txt"] });
    expect(first).toMatchObject({ purpose: "file", reused_upload: false, bytes: 9, filename: "spec.txt" });
    expect(second).toMatchObject({ file_id: first.file_id, reused_upload: true });
    expect(uploads(test)).toHaveLength(1);
    expect(body(uploads(test)[0])).toMatchObject({
      fields: { purpose: "file" },
      file: { filename: "spec.txt" },
    });
    const agent = await success(test, "glm_upload_file", { file: paths["spec.txt"], purpose: "agent" });
    expect(agent.file_id).not.toBe(first.file_id);
    expect(body(uploads(test)[1])).toMatchObject({ fields: { purpose: "agent" } });
  });

  it("glm_payload_preview shows the body chat would send, without any request", async () => {
    const test = await start();
    const result = await success(test, "glm_payload_preview", {
      prompt: "hello",
      model: "glm-4.5",
      thinking_mode: "high",
      use_websearch: true,
      temperature: 0.2,
    });
    expect(test.fake.requests).toHaveLength(0);
    const preview = result.body as Record<string, unknown>;
    expect(preview).toMatchObject({
      model: "glm-4.5",
      stream: true,
      temperature: 0.2,
      thinking: { type: "enabled" },
      tool_choice: "auto",
      tools: [{ type: "web_search", web_search: { enable: true, search_engine: "search_pro_jina" } }],
    });
    expect((preview.messages as Array<Record<string, unknown>>).at(-1)).toEqual({
      role: "user",
      content: "hello",
    });
    expect(JSON.stringify(result)).not.toContain("test-glm-key");
  });

  it("glm_payload_preview matches the body chat really sends", async () => {
    const test = await start();
    const preview = await success(test, "glm_payload_preview", {
      prompt: "same body?",
      model: "glm-4.5-flash",
    });
    await success(test, "chat", { prompt: "same body?", model: "glm-4.5-flash" });
    expect(body(test.fake.chatRequests()[0])).toEqual(preview.body);
  });

  it("GLM tools fail with NO_PROVIDER naming GLM_API_KEY when GLM is not configured", async () => {
    const test = await start({ GLM_API_KEY: undefined });
    const outcome = await call(test, "glm_web_search", { query: "x" });
    expect(outcome.error?.code).toBe("NO_PROVIDER");
    expect(outcome.error?.message).toContain("GLM_API_KEY");
  });
});

describe("smart_file_query", () => {
  it("uploads a file once per content and answers every question", async () => {
    const test = await start();
    const paths = files({ "design.md": "Retries use exponential backoff capped at 8 s.\n" });
    const first = await success(test, "smart_file_query", {
      file: paths["design.md"],
      question: "What caps the backoff?",
    });
    const second = await success(test, "smart_file_query", {
      file: paths["design.md"],
      question: "Is there jitter?",
    });
    expect(first.content).toBe("fake reply from kimi-k2.6: What caps the backoff?");
    expect(second.content).toBe("fake reply from kimi-k2.6: Is there jitter?");
    expect(uploads(test)).toHaveLength(1);
    expect(first.file).toMatchObject({ reused_upload: false });
    expect(second.file).toMatchObject({
      reused_upload: true,
      file_id: (first.file as Record<string, unknown>).file_id,
    });
    for (const request of test.fake.chatRequests()) {
      expect(String(messagesOf(request)[1]?.content)).toContain("exponential backoff");
    }
  });

  it("uploads again when the recorded file is gone at the provider", async () => {
    const test = await start();
    const paths = files({ "x.md": "content x\n" });
    const first = await success(test, "smart_file_query", { file: paths["x.md"], question: "q1" });
    const fileId = (first.file as Record<string, unknown>).file_id;
    // Deleted behind exai's back: the Store still has the record.
    await fetch(`${test.fake.url}/files/${String(fileId)}`, { method: "DELETE" });
    const second = await success(test, "smart_file_query", { file: paths["x.md"], question: "q2" });
    expect(second.file).toMatchObject({ reused_upload: false });
    expect((second.file as Record<string, unknown>).file_id).not.toBe(fileId);
    expect(uploads(test)).toHaveLength(2);
  });
});

describe("kimi_manage_files", () => {
  it("lists, deletes and cleans up files", async () => {
    const test = await start();
    const paths = files({ "one.txt": "one\n", "two.txt": "two\n" });
    const extracted = await success(test, "kimi_upload_and_extract", {
      files: [paths["one.txt"], paths["two.txt"]],
    });
    const [one, two] = (extracted.files as Array<Record<string, unknown>>).map((file) =>
      String(file.file_id),
    );
    // A file of the same account that exai did not upload.
    const form = new FormData();
    form.append("purpose", "file-extract");
    form.append("file", new Blob(["foreign"]), "foreign.txt");
    await fetch(`${test.fake.url}/files`, { method: "POST", body: form });

    const list = await success(test, "kimi_manage_files", { action: "list" });
    expect(list.count).toBe(3);
    const listed = list.files as Array<Record<string, unknown>>;
    expect(listed.filter((file) => file.uploaded_by_exai).map((file) => file.file_id)).toEqual([one, two]);

    const deleted = await success(test, "kimi_manage_files", { action: "delete", file_id: one });
    expect(deleted).toMatchObject({ deleted: true, file_id: one });
    expect(
      test.fake.requests.some((request) => request.method === "DELETE" && request.path === `/files/${one}`),
    ).toBe(true);
    expect((await test.runtime.store.listFiles("kimi")).map((file) => file.providerFileId)).toEqual([two]);

    const missing = await success(test, "kimi_manage_files", { action: "delete", file_id: one });
    expect(missing).toMatchObject({ deleted: false });

    const cleanup = await success(test, "kimi_manage_files", { action: "cleanup", older_than_hours: 1e-9 });
    expect(cleanup).toMatchObject({ deleted: [two], failed: [], kept: 1 });
    const after = await success(test, "kimi_manage_files", { action: "list" });
    expect((after.files as Array<Record<string, unknown>>).map((file) => file.filename)).toEqual([
      "foreign.txt",
    ]);
    expect(await test.runtime.store.listFiles("kimi")).toEqual([]);
  });

  it("delete without file_id is INVALID_ARGUMENT naming file_id", async () => {
    const test = await start();
    const outcome = await call(test, "kimi_manage_files", { action: "delete" });
    expect(outcome.error?.code).toBe("INVALID_ARGUMENT");
    expect(outcome.error?.message).toContain("file_id");
    expect(outcome.error?.field).toBe("file_id");
  });
});
