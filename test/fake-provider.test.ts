import OpenAI, { APIConnectionError, APIError, APIUserAbortError, toFile } from "openai";
import type { ChatCompletionChunk, ChatCompletionMessageParam } from "openai/resources/chat/completions";
import { afterEach, describe, expect, it } from "vitest";

import { startFakeProvider } from "../src/testing/fake-provider.js";
import { runFakeProviderCli } from "../src/testing/server.js";
import type { FakeProvider } from "../src/testing/fake-provider.js";

const providers: FakeProvider[] = [];

async function start(options?: Parameters<typeof startFakeProvider>[0]): Promise<FakeProvider> {
  const fake = await startFakeProvider(options);
  providers.push(fake);
  return fake;
}

function clientFor(fake: FakeProvider): OpenAI {
  return new OpenAI({ apiKey: "x", baseURL: fake.url, maxRetries: 0 });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function waitUntil(predicate: () => boolean, timeoutMs = 1000): Promise<void> {
  const start = performance.now();
  while (!predicate()) {
    if (performance.now() - start > timeoutMs) throw new Error("condition not reached");
    await sleep(5);
  }
}

async function caught(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error("expected a rejection");
}

afterEach(async () => {
  await Promise.all(providers.splice(0).map((fake) => fake.close()));
});

describe("fake provider: chat completions", () => {
  it("answers a non-stream request with a deterministic echo, usage and request_id", async () => {
    const fake = await start();
    const completion = await clientFor(fake).chat.completions.create({
      model: "glm-4.5-flash",
      messages: [
        { role: "system", content: "be brief" },
        { role: "user", content: "hello there" },
      ],
    });
    expect(completion.object).toBe("chat.completion");
    expect(completion.model).toBe("glm-4.5-flash");
    expect(completion.choices[0]?.message.content).toBe("fake reply from glm-4.5-flash: hello there");
    expect(completion.choices[0]?.finish_reason).toBe("stop");
    expect(completion.usage?.prompt_tokens).toBeGreaterThan(0);
    expect(completion.usage?.total_tokens).toBe(
      (completion.usage?.prompt_tokens ?? 0) + (completion.usage?.completion_tokens ?? 0),
    );
    expect((completion as unknown as { request_id: string }).request_id).toMatch(/^req-fake-/);

    const [request] = fake.chatRequests();
    expect(request?.id).toBe(1);
    expect(request?.headers.authorization).toBe("Bearer x");
    expect((request?.body as { model: string }).model).toBe("glm-4.5-flash");
    expect(request?.completedAt).toBeGreaterThanOrEqual(request?.receivedAt ?? Infinity);
    expect(request?.abortedAt).toBeUndefined();
  });

  it("streams reasoning before content, with usage in the final chunk (Kimi also in choices[0])", async () => {
    const fake = await start();
    fake.enqueue({
      reply: { reasoning: "thinking hard about it", content: "the answer is 42", chunkSize: 5 },
    });
    const stream = await clientFor(fake).chat.completions.create({
      model: "kimi-k2.6",
      messages: [{ role: "user", content: "q" }],
      stream: true,
    });
    const chunks: ChatCompletionChunk[] = [];
    for await (const chunk of stream) chunks.push(chunk);

    const deltas = chunks.map((c) => c.choices[0]?.delta as Record<string, unknown>);
    expect(deltas[0]?.role).toBe("assistant");
    const reasoning = deltas.map((d) => (d.reasoning_content as string | undefined) ?? "").join("");
    const content = deltas.map((d) => d.content ?? "").join("");
    expect(reasoning).toBe("thinking hard about it");
    expect(content).toBe("the answer is 42");
    const lastReasoning = deltas.findLastIndex((d) => d.reasoning_content !== undefined);
    const firstContent = deltas.findIndex((d) => d.content !== undefined);
    expect(lastReasoning).toBeLessThan(firstContent);

    const last = chunks.at(-1);
    expect(last?.choices[0]?.finish_reason).toBe("stop");
    expect(last?.usage?.completion_tokens).toBeGreaterThan(0);
    expect((last?.choices[0] as unknown as { usage: unknown }).usage).toEqual(last?.usage);
    for (const chunk of chunks.slice(0, -1)) expect(chunk.choices[0]?.finish_reason).toBeNull();
  });

  it("adds default reasoning for thinking requests and GLM web_search results", async () => {
    const fake = await start();
    const completion = await clientFor(fake).chat.completions.create({
      model: "glm-5",
      messages: [{ role: "user", content: "news today" }],
      thinking: { type: "enabled" },
      tools: [{ type: "web_search", web_search: { enable: true, search_result: true } }],
    } as unknown as OpenAI.ChatCompletionCreateParamsNonStreaming);
    const message = completion.choices[0]?.message as unknown as { reasoning_content: string };
    expect(message.reasoning_content).toMatch(/^Considering the request/);
    const webSearch = (completion as unknown as { web_search: Array<{ refer: string; link: string }> })
      .web_search;
    expect(webSearch[0]?.refer).toBe("ref_1");
    expect(webSearch[0]?.link).toMatch(/^https:\/\//);
  });

  it("streams tool calls and accepts /v1 and /api/paas/v4 prefixes", async () => {
    const fake = await start();
    fake.enqueue({ reply: { toolCalls: [{ name: "lookup", arguments: '{"q":1}' }] } });
    const client = new OpenAI({ apiKey: "x", baseURL: `${fake.url}/api/paas/v4`, maxRetries: 0 });
    const stream = await client.chat.completions.create({
      model: "glm-4.6",
      messages: [{ role: "user", content: "q" }],
      stream: true,
    });
    const chunks: ChatCompletionChunk[] = [];
    for await (const chunk of stream) chunks.push(chunk);
    const call = chunks.flatMap((c) => c.choices[0]?.delta.tool_calls ?? [])[0];
    expect(call).toMatchObject({
      index: 0,
      type: "function",
      function: { name: "lookup", arguments: '{"q":1}' },
    });
    expect(chunks.at(-1)?.choices[0]?.finish_reason).toBe("tool_calls");

    const v1 = new OpenAI({ apiKey: "x", baseURL: `${fake.url}/v1`, maxRetries: 0 });
    await v1.chat.completions.create({ model: "m", messages: [{ role: "user", content: "x" }] });
    expect(fake.chatRequests().map((r) => r.path)).toEqual(["/chat/completions", "/chat/completions"]);
  });

  it("applies rules in order by model and body text, honouring times", async () => {
    const fake = await start();
    fake.enqueue(
      { match: { model: /^kimi/ }, reply: { content: "kimi rule" }, times: 2 },
      { match: { bodyIncludes: "magic" }, reply: (request) => ({ content: `magic #${request.id}` }) },
    );
    const client = clientFor(fake);
    const ask = async (model: string, text: string): Promise<string | null | undefined> =>
      (await client.chat.completions.create({ model, messages: [{ role: "user", content: text }] }))
        .choices[0]?.message.content;
    expect(await ask("kimi-k2.6", "a")).toBe("kimi rule");
    expect(await ask("glm-5", "magic word")).toBe("magic #2");
    expect(await ask("kimi-k2.5", "b")).toBe("kimi rule");
    expect(await ask("kimi-k2.5", "magic")).toBe("fake reply from kimi-k2.5: magic");
  });

  it("runs the Kimi $web_search flow over two rounds", async () => {
    const fake = await start();
    const client = clientFor(fake);
    const tools = [{ type: "builtin_function", function: { name: "$web_search" } }];
    const messages: ChatCompletionMessageParam[] = [{ role: "user", content: "latest node release" }];
    const first = await client.chat.completions.create({
      model: "kimi-k2.6",
      messages,
      tools,
    } as unknown as OpenAI.ChatCompletionCreateParamsNonStreaming);
    const choice = first.choices[0];
    expect(choice?.finish_reason).toBe("tool_calls");
    const call = choice?.message.tool_calls?.[0] as unknown as {
      id: string;
      type: string;
      function: { name: string; arguments: string };
    };
    expect(call).toMatchObject({ id: "call_websearch_1", type: "builtin_function" });
    expect(call.function.name).toBe("$web_search");
    expect(JSON.parse(call.function.arguments)).toMatchObject({ usage: { total_tokens: 120 } });

    messages.push(
      choice?.message as ChatCompletionMessageParam,
      {
        role: "tool",
        tool_call_id: call.id,
        name: "$web_search",
        content: call.function.arguments,
      } as ChatCompletionMessageParam,
    );
    const second = await client.chat.completions.create({
      model: "kimi-k2.6",
      messages,
      tools,
    } as unknown as OpenAI.ChatCompletionCreateParamsNonStreaming);
    expect(second.choices[0]?.finish_reason).toBe("stop");
    expect(second.choices[0]?.message.content).toContain("after web search");
  });

  it("applies the default delay to chat completions without a rule", async () => {
    const fake = await start({ defaultDelayMs: 150 });
    const client = clientFor(fake);
    const t0 = performance.now();
    await client.chat.completions.create({ model: "m", messages: [{ role: "user", content: "x" }] });
    expect(performance.now() - t0).toBeGreaterThanOrEqual(140);
    fake.setDefaultDelay(0);
    const t1 = performance.now();
    await client.chat.completions.create({ model: "m", messages: [{ role: "user", content: "x" }] });
    expect(performance.now() - t1).toBeLessThan(140);
  });
});

describe("fake provider: faults", () => {
  it("returns 429 with a retry-after header that the SDK sees", async () => {
    const fake = await start();
    fake.enqueue({ fault: { kind: "status", status: 429, headers: { "retry-after": "1" } } });
    const error = await caught(
      clientFor(fake).chat.completions.create({ model: "m", messages: [{ role: "user", content: "x" }] }),
    );
    expect(error).toBeInstanceOf(APIError);
    const apiError = error as APIError;
    expect(apiError.status).toBe(429);
    expect(apiError.headers?.get("retry-after")).toBe("1");
    expect(apiError.error).toMatchObject({ message: "fake 429", type: "server_error", code: "429" });
    expect(fake.requests[0]?.faultApplied).toBe("status");
  });

  it("hang_before_headers: an SDK abort is recorded within 100 ms, and close() is prompt", async () => {
    const fake = await start();
    fake.enqueue({ fault: { kind: "hang_before_headers" }, times: 2 });
    const client = clientFor(fake);
    const controller = new AbortController();
    const pending = caught(
      client.chat.completions.create(
        { model: "m", messages: [{ role: "user", content: "x" }] },
        { signal: controller.signal },
      ),
    );
    await fake.waitForRequests(1);
    await sleep(30);
    const abortAt = performance.now();
    controller.abort();
    expect(await pending).toBeInstanceOf(APIUserAbortError);
    await waitUntil(() => fake.requests[0]?.abortedAt !== undefined, 500);
    const request = fake.requests[0];
    expect(request?.faultApplied).toBe("hang_before_headers");
    expect((request?.abortedAt ?? Infinity) - abortAt).toBeLessThan(100);
    expect(request?.completedAt).toBeUndefined();

    // A second hanging request must not keep close() waiting.
    const hanging = caught(
      client.chat.completions.create({ model: "m", messages: [{ role: "user", content: "y" }] }),
    );
    await fake.waitForRequests(2);
    const t0 = performance.now();
    await fake.close();
    expect(performance.now() - t0).toBeLessThan(200);
    expect(await hanging).toBeInstanceOf(APIConnectionError);
  });

  it("stall_after_chunks delivers exactly N content chunks, then nothing", async () => {
    const fake = await start();
    fake.enqueue({
      fault: { kind: "stall_after_chunks", chunks: 2 },
      reply: { content: "abcdefghijkl", chunkSize: 3 },
    });
    const controller = new AbortController();
    const stream = await clientFor(fake).chat.completions.create(
      { model: "glm-4.6", messages: [{ role: "user", content: "x" }], stream: true },
      { signal: controller.signal },
    );
    const contents: string[] = [];
    let finished = false;
    const consumer = (async () => {
      for await (const chunk of stream) {
        const text = chunk.choices[0]?.delta.content;
        if (text) contents.push(text);
      }
      finished = true;
    })();
    await waitUntil(() => contents.length >= 2);
    await sleep(150);
    expect(contents).toEqual(["abc", "def"]);
    expect(finished).toBe(false);
    controller.abort();
    // The SDK ends (or rejects) the iteration on abort; either way nothing more arrived.
    await consumer.catch(() => undefined);
    expect(contents).toEqual(["abc", "def"]);
    await waitUntil(() => fake.requests[0]?.abortedAt !== undefined, 500);
  });

  it("slow: delays headers and spaces stream chunks", async () => {
    const fake = await start();
    fake.enqueue({
      fault: { kind: "slow", delayMs: 60, chunkDelayMs: 30 },
      reply: { content: "aabb", chunkSize: 2 },
    });
    const t0 = performance.now();
    const stream = await clientFor(fake).chat.completions.create({
      model: "m",
      messages: [{ role: "user", content: "x" }],
      stream: true,
    });
    expect(performance.now() - t0).toBeGreaterThanOrEqual(55);
    const arrivals: number[] = [];
    for await (const _chunk of stream) arrivals.push(performance.now());
    expect(arrivals).toHaveLength(3); // two content chunks and the final chunk
    // A lower bound that load cannot break: the last chunk cannot arrive before it was written,
    // 60 ms (headers) + 2 × 30 ms (spacing) after the request. (Gaps between arrivals can shrink
    // when a loaded machine delivers two chunks together.)
    expect((arrivals[2] ?? 0) - t0).toBeGreaterThanOrEqual(115);
  });

  it("reset destroys the connection: the SDK reports a connection error", async () => {
    const fake = await start();
    fake.enqueue({ fault: { kind: "reset" } });
    const error = await caught(
      clientFor(fake).chat.completions.create({ model: "m", messages: [{ role: "user", content: "x" }] }),
    );
    expect(error).toBeInstanceOf(APIConnectionError);
    expect(fake.requests[0]?.faultApplied).toBe("reset");
  });

  it("malformed_json makes the SDK throw, streaming and not", async () => {
    const fake = await start();
    fake.enqueue({ fault: { kind: "malformed_json" }, times: 2 });
    // logLevel "off": the SDK would otherwise log the unparsable SSE line to stderr.
    const client = new OpenAI({ apiKey: "x", baseURL: fake.url, maxRetries: 0, logLevel: "off" });
    await expect(
      client.chat.completions.create({ model: "m", messages: [{ role: "user", content: "x" }] }),
    ).rejects.toThrow();
    const stream = await client.chat.completions.create({
      model: "m",
      messages: [{ role: "user", content: "x" }],
      stream: true,
    });
    await expect(
      (async () => {
        for await (const _chunk of stream) {
          // drain
        }
      })(),
    ).rejects.toThrow();
  });

  it("status 500 with a custom body, invalid JSON and unknown paths", async () => {
    const fake = await start();
    fake.enqueue({
      fault: { kind: "status", status: 500, body: { error: { code: "1305", message: "busy" } } },
    });
    const error = (await caught(
      clientFor(fake).chat.completions.create({ model: "m", messages: [{ role: "user", content: "x" }] }),
    )) as APIError;
    expect(error.status).toBe(500);
    expect(error.error).toEqual({ code: "1305", message: "busy" });

    const bad = await fetch(`${fake.url}/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{not json",
    });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toEqual({
      error: { message: "invalid JSON body", type: "invalid_request_error" },
    });

    const missing = await fetch(`${fake.url}/v1/nope`);
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as { error: { message: string } }).error.message).toContain("/nope");
    expect(fake.requests.map((r) => r.path)).toEqual(["/chat/completions", "/chat/completions", "/nope"]);
  });

  it("faults can target non-chat paths", async () => {
    const fake = await start();
    fake.enqueue({ match: { path: "/v1/models" }, fault: { kind: "status", status: 401 } });
    expect((await fetch(`${fake.url}/models`)).status).toBe(401);
    expect((await fetch(`${fake.url}/models`)).status).toBe(200);
  });
});

describe("fake provider: other endpoints", () => {
  it("uploads, lists, reads and deletes files (multipart from FormData)", async () => {
    const fake = await start();
    const form = new FormData();
    form.append("purpose", "file-extract");
    form.append("file", new Blob(["hello file\nline 2"], { type: "text/plain" }), "notes.txt");
    const upload = await fetch(`${fake.url}/files`, { method: "POST", body: form });
    expect(upload.status).toBe(200);
    const file = (await upload.json()) as Record<string, unknown>;
    expect(file).toMatchObject({
      object: "file",
      bytes: 17,
      filename: "notes.txt",
      purpose: "file-extract",
      status: "ok",
    });
    expect(String(file.id)).toMatch(/^file-/);
    expect(fake.requests[0]?.body).toEqual({
      fields: { purpose: "file-extract" },
      file: { filename: "notes.txt", bytes: 17, content: "hello file\nline 2" },
    });

    const list = (await (await fetch(`${fake.url}/v1/files`)).json()) as { object: string; data: unknown[] };
    expect(list.object).toBe("list");
    expect(list.data).toHaveLength(1);

    const content = await fetch(`${fake.url}/files/${String(file.id)}/content`);
    expect(await content.json()).toEqual({
      content: "hello file\nline 2",
      file_type: "text/plain",
      filename: "notes.txt",
      title: "",
      type: "file",
    });

    const deleted = await fetch(`${fake.url}/files/${String(file.id)}`, { method: "DELETE" });
    expect(await deleted.json()).toEqual({ id: file.id, object: "file", deleted: true });
    const gone = await fetch(`${fake.url}/files/${String(file.id)}/content`);
    expect(gone.status).toBe(404);
    expect(((await gone.json()) as { error: { type: string } }).error.type).toBe("resource_not_found_error");
  });

  it("accepts uploads from the openai SDK", async () => {
    const fake = await start();
    const client = clientFor(fake);
    const created = await client.files.create({
      file: await toFile(Buffer.from("sdk upload ✓"), "sdk.txt"),
      purpose: "file-extract" as OpenAI.FilePurpose,
    });
    expect(created.filename).toBe("sdk.txt");
    expect(created.bytes).toBe(Buffer.byteLength("sdk upload ✓"));
    const body = JSON.parse(await (await client.files.content(created.id)).text()) as { content: string };
    expect(body.content).toBe("sdk upload ✓");
  });

  it("answers GLM /web_search and rejects a missing search_query with code 1214", async () => {
    const fake = await start();
    const ok = await fetch(`${fake.url}/api/paas/v4/web_search`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ search_engine: "search-prime", search_query: "vitest", count: 2 }),
    });
    const result = (await ok.json()) as {
      request_id: string;
      search_intent: Array<{ query: string }>;
      search_result: Array<Record<string, unknown>>;
    };
    expect(result.search_intent[0]?.query).toBe("vitest");
    expect(result.search_result).toHaveLength(2);
    expect(Object.keys(result.search_result[0] ?? {}).sort()).toEqual(
      ["content", "icon", "link", "media", "publish_date", "refer", "title"].sort(),
    );

    const bad = await fetch(`${fake.url}/web_search`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ search_engine: "search-prime" }),
    });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { code: string } }).error.code).toBe("1214");
  });

  it("lists models through the SDK", async () => {
    const fake = await start();
    const ids: string[] = [];
    for await (const model of clientFor(fake).models.list()) ids.push(model.id);
    expect(ids).toContain("glm-4.5-flash");
    expect(ids).toContain("kimi-k2.6");
  });
});

describe("fake provider: bookkeeping", () => {
  it("waitForRequests resolves on arrival and rejects after its timeout; reset clears state", async () => {
    const fake = await start();
    const waiting = fake.waitForRequests(2, 1000);
    await fetch(`${fake.url}/models`);
    await fetch(`${fake.url}/models`);
    await waiting;
    await expect(fake.waitForRequests(3, 50)).rejects.toThrow(/timed out/);

    fake.enqueue({ fault: { kind: "status", status: 500 } });
    fake.setDefaultDelay(500);
    fake.reset();
    expect(fake.requests).toHaveLength(0);
    const t0 = performance.now();
    const completion = await clientFor(fake).chat.completions.create({
      model: "m",
      messages: [{ role: "user", content: "x" }],
    });
    expect(performance.now() - t0).toBeLessThan(300);
    expect(completion.choices[0]?.message.content).toBe("fake reply from m: x");
    expect(fake.requests[0]?.id).toBe(1);
  });

  it("runFakeProviderCli prints the URL to stderr only", async () => {
    const written: string[] = [];
    const original = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((chunk: string | Uint8Array) => {
      written.push(String(chunk));
      return true;
    }) as typeof process.stderr.write;
    let fake: FakeProvider;
    try {
      fake = await runFakeProviderCli({ delayMs: 0 });
    } finally {
      process.stderr.write = original;
    }
    providers.push(fake);
    expect(written).toEqual([`fake provider listening on ${fake.url}\n`]);
    expect(fake.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
  });
});
