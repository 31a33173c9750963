/**
 * A fake OpenAI-compatible provider: a real HTTP server (node:http) that speaks the GLM (Z.ai) and
 * Kimi (Moonshot) dialects closely enough for the official `openai` SDK, streaming and not.
 *
 * Used by the test suite (with scripted faults: hangs, stalls, slow answers, error statuses, resets,
 * malformed JSON) and runnable for demos (`exai fake-provider --port 8787`, see ./server.ts).
 *
 * Endpoints (each also reachable under a `/v1` or `/api/paas/v4` prefix):
 * - `POST /chat/completions` (stream and non-stream; reasoning, tool calls, GLM web_search, Kimi `$web_search`)
 * - `POST /web_search` (GLM standalone search)
 * - `POST /files`, `GET /files`, `GET /files/:id`, `GET /files/:id/content`, `DELETE /files/:id`
 * - `GET /models`
 */
import http from "node:http";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Socket } from "node:net";

/** One request as the fake provider saw it. */
export interface RecordedRequest {
  /** 1-based sequence number. */
  id: number;
  method: string;
  /** Path without query and without a `/v1` or `/api/paas/v4` prefix, e.g. "/chat/completions". */
  path: string;
  /** Lower-cased header names. */
  headers: Record<string, string>;
  /** Parsed JSON for JSON bodies; `{fields, file?}` for multipart; raw text otherwise; undefined when empty. */
  body: unknown;
  /** performance.now() at arrival. */
  receivedAt: number;
  /** performance.now() when the response ended normally. */
  completedAt?: number;
  /** performance.now() when the client closed the connection before the response ended. */
  abortedAt?: number;
  /** Kind of the fault applied to this request, if any. */
  faultApplied?: string;
}

/** A scripted misbehaviour for the next matching request(s). */
export type FakeFault =
  /** Never answer (until the client aborts or the server closes). */
  | { kind: "hang_before_headers" }
  /** Streaming: send N content chunks (reasoning chunks are not counted), then go silent forever.
   *  Non-stream: send the headers and the start of the body, then go silent. */
  | { kind: "stall_after_chunks"; chunks: number }
  /** Wait delayMs before the headers; chunkDelayMs between stream chunks. */
  | { kind: "slow"; delayMs: number; chunkDelayMs?: number }
  /** Answer with this status; body is JSON-encoded unless it is a string (sent as is); default body is
   *  `{error:{message:"fake <status>", type:"server_error", code:"<status>"}}`. */
  | { kind: "status"; status: number; body?: unknown; headers?: Record<string, string> }
  /** Destroy the socket (TCP RST) without a response. */
  | { kind: "reset" }
  /** 200 with a body (or an SSE data line) that is not valid JSON. */
  | { kind: "malformed_json" }
  /**
   * 200 that never ends, as fast as the client reads (backpressure respected, so the fake itself
   * holds no backlog): a stream of `chunkChars`-character deltas (default 4096) of `field`
   * (default "content") without a finish_reason; a non-stream or non-chat request gets a JSON body
   * whose string value never closes. `oneLine`: the stream is a single SSE line that never ends
   * (no chunk is ever complete). Until the client disconnects or `limitBytes` are sent.
   */
  | {
      kind: "endless";
      chunkChars?: number;
      field?: "content" | "reasoning";
      oneLine?: boolean;
      limitBytes?: number;
      /** HTTP status of the endless response (default 200; not 200: a JSON body without end). */
      status?: number;
    };

/** A scripted chat completion answer; every field has a default. */
export interface FakeReply {
  /** Default: deterministic echo of the last user message (empty when toolCalls are given). */
  content?: string;
  /** Sent as reasoning_content deltas before the content. Default: a short text for thinking requests. */
  reasoning?: string;
  toolCalls?: Array<{ id?: string; name: string; arguments: string }>;
  /** Default: "tool_calls" when there are tool calls, else "stop". */
  finishReason?: string;
  /** Characters per content / reasoning delta; default 40. */
  chunkSize?: number;
}

/** A rule: which requests it applies to, and what to do with them. */
export interface FakeRule {
  /** All given conditions must match; without `path` the rule matches only /chat/completions. */
  match?: { path?: string; model?: string | RegExp; bodyIncludes?: string };
  /** How many requests this rule applies to; default 1; Infinity allowed. */
  times?: number;
  fault?: FakeFault;
  reply?: FakeReply | ((request: RecordedRequest) => FakeReply);
  /** Delay before answering (added to any fault's delay). */
  delayMs?: number;
}

export interface FakeProviderOptions {
  port?: number;
  host?: string;
  defaultDelayMs?: number;
}

export interface FakeProvider {
  /** "http://127.0.0.1:PORT": usable as an SDK base URL directly (no /v1 needed). */
  readonly url: string;
  readonly requests: RecordedRequest[];
  /** Adds rules; they are tried in order, and a rule is consumed when its `times` reach 0. */
  enqueue(...rules: FakeRule[]): void;
  /** Delay applied to every chat completion that no rule matched. */
  setDefaultDelay(ms: number): void;
  /** Only the POST /chat/completions requests. */
  chatRequests(): RecordedRequest[];
  /** Resolves once `requests.length >= count`; rejects after `timeoutMs` (default 2000). */
  waitForRequests(count: number, timeoutMs?: number): Promise<void>;
  /** Clears rules, recorded requests, uploaded files and the default delay. */
  reset(): void;
  /** Destroys all open sockets and closes the server; never hangs. */
  close(): Promise<void>;
}

interface RuleEntry {
  rule: FakeRule;
  remaining: number;
}

interface StoredFile {
  id: string;
  bytes: number;
  created_at: number;
  filename: string;
  purpose: string;
  content: string;
}

interface OutToolCall {
  id: string;
  type: string;
  name: string;
  arguments: string;
}

interface ResolvedReply {
  content: string;
  reasoning: string;
  toolCalls: OutToolCall[];
  finishReason: string;
  chunkSize: number;
  webSearch?: WebSearchItem[];
}

interface WebSearchItem {
  title: string;
  content: string;
  link: string;
  media: string;
  icon: string;
  refer: string;
  publish_date: string;
}

interface MultipartBody {
  fields: Record<string, string>;
  file?: { filename: string; bytes: number; content: string };
}

interface Waiter {
  count: number;
  resolve: () => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
}

const FAKE_MODELS: ReadonlyArray<{ id: string; owned_by: string }> = [
  { id: "glm-5.2", owned_by: "z-ai" },
  { id: "glm-5.1", owned_by: "z-ai" },
  { id: "glm-5", owned_by: "z-ai" },
  { id: "glm-4.7", owned_by: "z-ai" },
  { id: "glm-4.6", owned_by: "z-ai" },
  { id: "glm-4.5", owned_by: "z-ai" },
  { id: "glm-4.5-air", owned_by: "z-ai" },
  { id: "glm-4.5-flash", owned_by: "z-ai" },
  { id: "glm-4.5v", owned_by: "z-ai" },
  { id: "kimi-k2.6", owned_by: "moonshot" },
  { id: "kimi-k2.5", owned_by: "moonshot" },
  { id: "kimi-k2.7-code", owned_by: "moonshot" },
  { id: "kimi-k2-thinking", owned_by: "moonshot" },
  { id: "moonshot-v1-8k", owned_by: "moonshot" },
  { id: "moonshot-v1-32k", owned_by: "moonshot" },
  { id: "moonshot-v1-128k", owned_by: "moonshot" },
];

const PATH_PREFIX = /^\/(?:v1|api\/paas\/v4|api\/coding\/paas\/v4|paas\/v4)(?=\/|$)/;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** "/v1/chat/completions?x=1" → "/chat/completions". */
function normalizePath(rawUrl: string): string {
  const withoutQuery = rawUrl.split("?")[0] ?? "/";
  let path = withoutQuery.replace(PATH_PREFIX, "");
  if (path.length > 1 && path.endsWith("/")) path = path.slice(0, -1);
  return path === "" ? "/" : path;
}

function flattenHeaders(headers: IncomingMessage["headers"]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    out[name.toLowerCase()] = Array.isArray(value) ? value.join(", ") : value;
  }
  return out;
}

/** Parses the parameters of a header such as `form-data; name="file"; filename="a.txt"`. */
function headerParams(value: string): Record<string, string> {
  const params: Record<string, string> = {};
  const re = /;\s*([^=;\s]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;]*))/g;
  for (let m = re.exec(value); m !== null; m = re.exec(value)) {
    const key = (m[1] ?? "").toLowerCase();
    params[key] = m[2] !== undefined ? m[2].replace(/\\(.)/g, "$1") : (m[3] ?? "").trim();
  }
  return params;
}

/** Minimal multipart/form-data parser; returns undefined when the body is not well formed. */
function parseMultipart(body: Buffer, contentType: string): MultipartBody | undefined {
  const boundary = headerParams(contentType).boundary;
  if (!boundary) return undefined;
  const delimiter = Buffer.from(`--${boundary}`);
  const nextDelimiter = Buffer.from(`\r\n--${boundary}`);
  const result: MultipartBody = { fields: {} };
  let pos = body.indexOf(delimiter);
  if (pos < 0) return undefined;
  pos += delimiter.length;
  for (;;) {
    if (body[pos] === 0x2d && body[pos + 1] === 0x2d) return result; // "--": closing delimiter
    if (body[pos] === 0x0d && body[pos + 1] === 0x0a) pos += 2;
    const end = body.indexOf(nextDelimiter, pos);
    if (end < 0) return undefined;
    const part = body.subarray(pos, end);
    const headerEnd = part.indexOf("\r\n\r\n");
    if (headerEnd < 0) return undefined;
    const partHeaders: Record<string, string> = {};
    for (const line of part.subarray(0, headerEnd).toString("utf8").split("\r\n")) {
      const colon = line.indexOf(":");
      if (colon > 0) partHeaders[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    const content = part.subarray(headerEnd + 4);
    const disposition = headerParams(partHeaders["content-disposition"] ?? "");
    const name = disposition.name ?? "";
    if (disposition.filename !== undefined || name === "file") {
      result.file = {
        filename: disposition.filename ?? "file",
        bytes: content.length,
        content: content.toString("utf8"),
      };
    } else if (name) {
      result.fields[name] = content.toString("utf8");
    }
    pos = end + nextDelimiter.length;
  }
}

function textOf(content: unknown): string {
  if (typeof content === "string") return content;
  if (Array.isArray(content)) {
    return content
      .map((part) => (isRecord(part) && typeof part.text === "string" ? part.text : ""))
      .filter((text) => text !== "")
      .join("\n");
  }
  return "";
}

function lastUserText(messages: unknown[]): string {
  for (let i = messages.length - 1; i >= 0; i--) {
    const message = messages[i];
    if (isRecord(message) && message.role === "user") return textOf(message.content);
  }
  return "";
}

function splitChunks(text: string, size: number): string[] {
  const chars = Array.from(text);
  const step = Math.max(1, Math.floor(size));
  const out: string[] = [];
  for (let i = 0; i < chars.length; i += step) out.push(chars.slice(i, i + step).join(""));
  return out;
}

function approxTokens(chars: number): number {
  return Math.max(1, Math.ceil(chars / 4));
}

function errorBody(message: string, type: string, code?: string): { error: Record<string, string> } {
  return { error: code === undefined ? { message, type } : { message, type, code } };
}

function fakeSearchResults(query: string, count: number): WebSearchItem[] {
  const items: WebSearchItem[] = [];
  for (let i = 1; i <= count; i++) {
    items.push({
      title: `Result ${i} for ${query}`,
      content: `Fake search result ${i} about ${query}.`,
      link: `https://example.com/search/${i}?q=${encodeURIComponent(query)}`,
      media: "Example",
      icon: "https://example.com/favicon.ico",
      refer: `ref_${i}`,
      publish_date: "2026-01-01",
    });
  }
  return items;
}

/**
 * Starts a fake OpenAI-compatible provider on `host` (default 127.0.0.1) and `port` (default 0: a free one).
 * All state (rules, recorded requests, files, timers, sockets) lives in the returned instance.
 */
export function startFakeProvider(options: FakeProviderOptions = {}): Promise<FakeProvider> {
  const host = options.host ?? "127.0.0.1";
  const requests: RecordedRequest[] = [];
  const rules: RuleEntry[] = [];
  const files = new Map<string, StoredFile>();
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();
  const inflight = new Set<AbortController>();
  const waiters = new Set<Waiter>();
  let defaultDelayMs = options.defaultDelayMs ?? 0;
  let sequence = 0;
  let fileSequence = 0;
  let closing = false;
  let closePromise: Promise<void> | undefined;

  /** Resolves true after `ms`, or false as soon as `signal` aborts. */
  function sleep(ms: number, signal: AbortSignal): Promise<boolean> {
    if (signal.aborted) return Promise.resolve(false);
    if (ms <= 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const onAbort = (): void => {
        clearTimeout(timer);
        timers.delete(timer);
        resolve(false);
      };
      const timer = setTimeout(() => {
        timers.delete(timer);
        signal.removeEventListener("abort", onAbort);
        resolve(true);
      }, ms);
      timer.unref();
      timers.add(timer);
      signal.addEventListener("abort", onAbort, { once: true });
    });
  }

  function notifyWaiters(): void {
    for (const waiter of waiters) {
      if (requests.length >= waiter.count) {
        clearTimeout(waiter.timer);
        waiters.delete(waiter);
        waiter.resolve();
      }
    }
  }

  function takeRule(record: RecordedRequest, rawText: string): FakeRule | undefined {
    const model =
      isRecord(record.body) && typeof record.body.model === "string" ? record.body.model : undefined;
    for (let i = 0; i < rules.length; i++) {
      const entry = rules[i];
      if (entry === undefined) continue;
      const match = entry.rule.match ?? {};
      const wantedPath = match.path === undefined ? "/chat/completions" : normalizePath(match.path);
      if (record.path !== wantedPath) continue;
      if (match.model !== undefined) {
        if (model === undefined) continue;
        if (typeof match.model === "string" ? match.model !== model : !match.model.test(model)) continue;
      }
      if (match.bodyIncludes !== undefined && !rawText.includes(match.bodyIncludes)) continue;
      entry.remaining -= 1;
      if (entry.remaining <= 0) rules.splice(i, 1);
      return entry.rule;
    }
    return undefined;
  }

  function sendJson(
    res: ServerResponse,
    status: number,
    body: unknown,
    headers: Record<string, string> = {},
  ): void {
    if (res.headersSent || res.destroyed) return;
    const text = typeof body === "string" ? body : JSON.stringify(body);
    const hasType = Object.keys(headers).some((name) => name.toLowerCase() === "content-type");
    res.writeHead(status, {
      ...(hasType ? {} : { "content-type": "application/json; charset=utf-8" }),
      "content-length": String(Buffer.byteLength(text)),
      ...headers,
    });
    res.end(text);
  }

  function resolveReply(
    record: RecordedRequest,
    body: Record<string, unknown>,
    rule?: FakeRule,
  ): ResolvedReply {
    const given: FakeReply = (typeof rule?.reply === "function" ? rule.reply(record) : rule?.reply) ?? {};
    const model = typeof body.model === "string" ? body.model : "unknown";
    const messages = Array.isArray(body.messages) ? body.messages : [];
    const tools = Array.isArray(body.tools) ? body.tools : [];
    const userText = lastUserText(messages);
    const thinkingType = isRecord(body.thinking) ? body.thinking.type : undefined;
    const thinking =
      (model.includes("thinking") || thinkingType === "enabled") && thinkingType !== "disabled";
    const kimiSearch = tools.some(
      (tool) =>
        isRecord(tool) &&
        tool.type === "builtin_function" &&
        isRecord(tool.function) &&
        tool.function.name === "$web_search",
    );
    const hasToolMessage = messages.some((message) => isRecord(message) && message.role === "tool");
    const glmSearchTool = tools.find((tool) => isRecord(tool) && tool.type === "web_search");

    let toolCalls: OutToolCall[] = (given.toolCalls ?? []).map((call, index) => ({
      id: call.id ?? `call_fake_${record.id}_${index + 1}`,
      type: "function",
      name: call.name,
      arguments: call.arguments,
    }));
    let defaultContent = `fake reply from ${model}: ${userText.slice(0, 120)}`;
    if (kimiSearch && given.content === undefined && given.toolCalls === undefined) {
      if (hasToolMessage) {
        defaultContent = `fake reply from ${model} after web search: ${userText.slice(0, 120)}`;
      } else {
        toolCalls = [
          {
            id: "call_websearch_1",
            type: "builtin_function",
            name: "$web_search",
            arguments: JSON.stringify({
              search_result: { search_id: "fake-search-1" },
              usage: { total_tokens: 120 },
            }),
          },
        ];
      }
    }
    const reply: ResolvedReply = {
      content: given.content ?? (toolCalls.length > 0 ? "" : defaultContent),
      reasoning:
        given.reasoning ?? (thinking ? `Considering the request… ${userText.slice(0, 40)}`.trim() : ""),
      toolCalls,
      finishReason: given.finishReason ?? (toolCalls.length > 0 ? "tool_calls" : "stop"),
      chunkSize: given.chunkSize ?? 40,
    };
    if (glmSearchTool !== undefined) {
      const options =
        isRecord(glmSearchTool) && isRecord(glmSearchTool.web_search) ? glmSearchTool.web_search : {};
      const query = typeof options.search_query === "string" ? options.search_query : userText.slice(0, 80);
      reply.webSearch = fakeSearchResults(query || "query", 2);
    }
    return reply;
  }

  function usageFor(rawLength: number, reply: ResolvedReply): Record<string, unknown> {
    const promptTokens = approxTokens(rawLength);
    const argChars = reply.toolCalls.reduce((sum, call) => sum + call.name.length + call.arguments.length, 0);
    const completionTokens = approxTokens(reply.content.length + reply.reasoning.length + argChars);
    const usage: Record<string, unknown> = {
      prompt_tokens: promptTokens,
      completion_tokens: completionTokens,
      total_tokens: promptTokens + completionTokens,
    };
    if (reply.reasoning)
      usage.completion_tokens_details = { reasoning_tokens: approxTokens(reply.reasoning.length) };
    return usage;
  }

  async function handleChat(
    record: RecordedRequest,
    res: ServerResponse,
    signal: AbortSignal,
    rawLength: number,
    rule: FakeRule | undefined,
  ): Promise<void> {
    const body = record.body;
    if (!isRecord(body)) {
      sendJson(res, 400, errorBody("request body must be a JSON object", "invalid_request_error"));
      return;
    }
    const model = typeof body.model === "string" ? body.model : "unknown";
    const reply = resolveReply(record, body, rule);
    const usage = usageFor(rawLength, reply);
    const id = `chatcmpl-fake-${record.id}`;
    const created = Math.floor(Date.now() / 1000);
    const fault = rule?.fault;
    const stream = body.stream === true;

    if (!stream) {
      if (fault?.kind === "stall_after_chunks") {
        // Headers and the start of the body, then silence.
        res.writeHead(200, { "content-type": "application/json; charset=utf-8" });
        res.write(`{"id":"${id}","object":"chat.completion",`);
        return;
      }
      const message: Record<string, unknown> = {
        role: "assistant",
        content: reply.toolCalls.length > 0 && reply.content === "" ? null : reply.content,
      };
      if (reply.reasoning) message.reasoning_content = reply.reasoning;
      if (reply.toolCalls.length > 0) {
        message.tool_calls = reply.toolCalls.map((call) => ({
          id: call.id,
          type: call.type,
          function: { name: call.name, arguments: call.arguments },
        }));
      }
      const requestId = typeof body.request_id === "string" ? body.request_id : `req-fake-${record.id}`;
      const response: Record<string, unknown> = {
        id,
        request_id: requestId,
        object: "chat.completion",
        created,
        model,
        choices: [{ index: 0, message, finish_reason: reply.finishReason }],
        usage,
      };
      if (reply.webSearch) response.web_search = reply.webSearch;
      sendJson(res, 200, response);
      return;
    }

    const deltas: Array<{ delta: Record<string, unknown>; isContent: boolean }> = [];
    for (const piece of splitChunks(reply.reasoning, reply.chunkSize)) {
      deltas.push({ delta: { reasoning_content: piece }, isContent: false });
    }
    for (const piece of splitChunks(reply.content, reply.chunkSize)) {
      deltas.push({ delta: { content: piece }, isContent: true });
    }
    reply.toolCalls.forEach((call, index) => {
      deltas.push({
        delta: {
          tool_calls: [
            { index, id: call.id, type: call.type, function: { name: call.name, arguments: call.arguments } },
          ],
        },
        isContent: false,
      });
    });
    if (deltas.length === 0) deltas.push({ delta: { content: "" }, isContent: false });
    const first = deltas[0];
    if (first) first.delta = { role: "assistant", ...first.delta };

    res.writeHead(200, {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache",
      connection: "keep-alive",
    });
    res.flushHeaders();
    const writeEvent = (payload: unknown): boolean => {
      if (res.destroyed || res.writableEnded) return false;
      res.write(`data: ${JSON.stringify(payload)}\n\n`);
      return true;
    };
    const chunkDelayMs = fault?.kind === "slow" ? (fault.chunkDelayMs ?? 0) : 0;
    const stallAfter = fault?.kind === "stall_after_chunks" ? fault.chunks : undefined;
    const base = { id, object: "chat.completion.chunk", created, model };
    let contentSent = 0;
    for (let i = 0; i < deltas.length; i++) {
      const item = deltas[i];
      if (item === undefined) continue;
      if (stallAfter !== undefined && item.isContent && contentSent >= stallAfter) return; // silent forever
      if (i > 0 && !(await sleep(chunkDelayMs, signal))) return;
      const chunk: Record<string, unknown> = {
        ...base,
        choices: [{ index: 0, delta: item.delta, finish_reason: null }],
      };
      if (i === 0 && reply.webSearch) chunk.web_search = reply.webSearch;
      if (!writeEvent(chunk)) return;
      if (item.isContent) contentSent += 1;
    }
    if (stallAfter !== undefined) return; // fewer content chunks than N: stall before the final chunk
    if (!(await sleep(chunkDelayMs, signal))) return;
    const kimiStyle = model.startsWith("kimi") || model.startsWith("moonshot");
    const finalChoice: Record<string, unknown> = { index: 0, delta: {}, finish_reason: reply.finishReason };
    if (kimiStyle) finalChoice.usage = usage;
    if (!writeEvent({ ...base, choices: [finalChoice], usage })) return;
    res.end("data: [DONE]\n\n");
  }

  function handleWebSearch(record: RecordedRequest, res: ServerResponse): void {
    const body = record.body;
    const query = isRecord(body) && typeof body.search_query === "string" ? body.search_query.trim() : "";
    if (!query) {
      sendJson(res, 400, { error: { code: "1214", message: "search_query is required" } });
      return;
    }
    const requested = isRecord(body) && typeof body.count === "number" ? body.count : 3;
    const count = Math.min(10, Math.max(1, Math.floor(requested)));
    sendJson(res, 200, {
      id: `search-fake-${record.id}`,
      created: Math.floor(Date.now() / 1000),
      request_id:
        isRecord(body) && typeof body.request_id === "string" ? body.request_id : `req-fake-${record.id}`,
      search_intent: [{ query, intent: "SEARCH_ALL", keywords: query.toLowerCase() }],
      search_result: fakeSearchResults(query, count),
    });
  }

  function fileObject(file: StoredFile): Record<string, unknown> {
    return {
      id: file.id,
      object: "file",
      bytes: file.bytes,
      created_at: file.created_at,
      filename: file.filename,
      purpose: file.purpose,
      status: "ok",
      status_details: "",
    };
  }

  function fileNotFound(res: ServerResponse, id: string): void {
    sendJson(res, 404, errorBody(`file not found: ${id}`, "resource_not_found_error"));
  }

  function handleFiles(record: RecordedRequest, res: ServerResponse): boolean {
    const { method, path } = record;
    if (path === "/files" && method === "POST") {
      const body = record.body as MultipartBody | undefined;
      const isMultipart = (record.headers["content-type"] ?? "")
        .toLowerCase()
        .startsWith("multipart/form-data");
      if (!isMultipart || !isRecord(body) || body.file === undefined) {
        sendJson(res, 400, errorBody("expected multipart/form-data with a file", "invalid_request_error"));
        return true;
      }
      fileSequence += 1;
      const file: StoredFile = {
        id: `file-fake-${fileSequence}`,
        bytes: body.file.bytes,
        created_at: Math.floor(Date.now() / 1000),
        filename: body.file.filename,
        purpose: body.fields.purpose ?? "file-extract",
        content: body.file.content,
      };
      files.set(file.id, file);
      sendJson(res, 200, fileObject(file));
      return true;
    }
    if (path === "/files" && method === "GET") {
      sendJson(res, 200, { object: "list", data: [...files.values()].map(fileObject), has_more: false });
      return true;
    }
    const match = /^\/files\/([^/]+)(\/content)?$/.exec(path);
    if (!match) return false;
    const id = decodeURIComponent(match[1] ?? "");
    const file = files.get(id);
    if (match[2] && method === "GET") {
      if (!file) fileNotFound(res, id);
      else {
        sendJson(res, 200, {
          content: file.content,
          file_type: "text/plain",
          filename: file.filename,
          title: "",
          type: "file",
        });
      }
      return true;
    }
    if (match[2]) return false;
    if (method === "GET") {
      if (!file) fileNotFound(res, id);
      else sendJson(res, 200, fileObject(file));
      return true;
    }
    if (method === "DELETE") {
      if (!file) fileNotFound(res, id);
      else {
        files.delete(id);
        sendJson(res, 200, { id, object: "file", deleted: true });
      }
      return true;
    }
    return false;
  }

  /** Writes `text` until the client is gone or `limit` bytes went out, waiting for 'drain'. */
  async function writeForever(
    res: ServerResponse,
    text: string,
    signal: AbortSignal,
    limit: number,
  ): Promise<void> {
    const bytes = Buffer.from(text);
    let sent = 0;
    while (!signal.aborted && !res.destroyed && sent < limit) {
      sent += bytes.length;
      if (!res.write(bytes)) {
        await new Promise<void>((resolve) => {
          const done = (): void => {
            res.off("drain", done);
            res.off("close", done);
            signal.removeEventListener("abort", done);
            resolve();
          };
          res.on("drain", done);
          res.on("close", done);
          signal.addEventListener("abort", done, { once: true });
        });
      }
    }
    if (!res.destroyed) res.end();
  }

  async function sendEndless(
    res: ServerResponse,
    record: RecordedRequest,
    fault: Extract<FakeFault, { kind: "endless" }>,
    signal: AbortSignal,
  ): Promise<void> {
    const piece = "x".repeat(Math.max(1, fault.chunkChars ?? 4096));
    const limit = fault.limitBytes ?? Number.POSITIVE_INFINITY;
    const stream = isRecord(record.body) && record.body.stream === true;
    const status = fault.status ?? 200;
    if (stream && status === 200 && record.path === "/chat/completions") {
      res.writeHead(200, { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache" });
      if (fault.oneLine) {
        res.write(`data: {"id":"chatcmpl-fake-${record.id}","choices":[{"index":0,"delta":{"content":"`);
        await writeForever(res, piece, signal, limit);
        return;
      }
      const model = isRecord(record.body) && typeof record.body.model === "string" ? record.body.model : "";
      const delta = fault.field === "reasoning" ? { reasoning_content: piece } : { content: piece };
      const event = `data: ${JSON.stringify({
        id: `chatcmpl-fake-${record.id}`,
        object: "chat.completion.chunk",
        model,
        choices: [{ index: 0, delta, finish_reason: null }],
      })}\n\n`;
      await writeForever(res, event, signal, limit);
      return;
    }
    res.writeHead(status, { "content-type": "application/json; charset=utf-8" });
    res.write('{"id":"endless","content":"');
    await writeForever(res, piece, signal, limit);
  }

  function sendMalformed(res: ServerResponse, record: RecordedRequest): void {
    const stream = isRecord(record.body) && record.body.stream === true;
    if (stream && record.path === "/chat/completions") {
      res.writeHead(200, { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache" });
      res.write(`data: {"id":"chatcmpl-fake-${record.id}","choices":[{"delta":{"content":"bro\n\n`);
      res.end("data: [DONE]\n\n");
      return;
    }
    sendJson(res, 200, `{"id":"chatcmpl-fake-${record.id}","object":"chat.completion","choices":[`);
  }

  async function respond(
    record: RecordedRequest,
    req: IncomingMessage,
    res: ServerResponse,
    signal: AbortSignal,
    raw: Buffer,
    markSelfDestroyed: () => void,
  ): Promise<void> {
    const isChat = record.method === "POST" && record.path === "/chat/completions";
    const rule = takeRule(record, raw.toString("utf8"));
    const fault = rule?.fault;
    if (fault) record.faultApplied = fault.kind;
    let delay = rule ? (rule.delayMs ?? 0) : isChat ? defaultDelayMs : 0;
    if (fault?.kind === "slow") delay += fault.delayMs;
    if (!(await sleep(delay, signal))) return;

    switch (fault?.kind) {
      case "hang_before_headers":
        return; // never answer; the socket is destroyed by the client or by close()
      case "reset": {
        markSelfDestroyed();
        const socket = req.socket;
        if (typeof socket.resetAndDestroy === "function") socket.resetAndDestroy();
        else socket.destroy();
        return;
      }
      case "status": {
        const status = fault.status;
        const body = fault.body ?? errorBody(`fake ${status}`, "server_error", String(status));
        sendJson(res, status, body, fault.headers ?? {});
        return;
      }
      case "malformed_json":
        sendMalformed(res, record);
        return;
      case "endless":
        await sendEndless(res, record, fault, signal);
        return;
      case "stall_after_chunks":
        if (!isChat) {
          res.writeHead(200, { "content-type": "application/json; charset=utf-8" });
          res.write('{"object":');
          return;
        }
        break;
      default:
        break;
    }

    if (isChat) {
      await handleChat(record, res, signal, raw.length, rule);
      return;
    }
    if (record.method === "POST" && record.path === "/web_search") {
      handleWebSearch(record, res);
      return;
    }
    if (record.method === "GET" && record.path === "/models") {
      sendJson(res, 200, {
        object: "list",
        data: FAKE_MODELS.map((m) => ({
          id: m.id,
          object: "model",
          created: 1767225600,
          owned_by: m.owned_by,
        })),
      });
      return;
    }
    if (handleFiles(record, res)) return;
    sendJson(
      res,
      404,
      errorBody(`unknown endpoint: ${record.method} ${record.path}`, "resource_not_found_error", "404"),
    );
  }

  function onRequest(req: IncomingMessage, res: ServerResponse): void {
    const record: RecordedRequest = {
      id: 0,
      method: (req.method ?? "GET").toUpperCase(),
      path: normalizePath(req.url ?? "/"),
      headers: flattenHeaders(req.headers),
      body: undefined,
      receivedAt: performance.now(),
    };
    const controller = new AbortController();
    inflight.add(controller);
    let recorded = false;
    let selfDestroyed = false;
    const recordOnce = (): void => {
      if (recorded) return;
      recorded = true;
      sequence += 1;
      record.id = sequence;
      requests.push(record);
      notifyWaiters();
    };
    res.on("finish", () => {
      record.completedAt = performance.now();
    });
    res.on("close", () => {
      if (!res.writableFinished && !selfDestroyed && !closing) record.abortedAt = performance.now();
      inflight.delete(controller);
      controller.abort();
      recordOnce();
    });
    res.on("error", () => undefined);
    req.on("error", () => undefined);

    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const raw = Buffer.concat(chunks);
      const contentType = (record.headers["content-type"] ?? "").toLowerCase();
      let invalidJson = false;
      if (contentType.startsWith("multipart/form-data")) {
        record.body = parseMultipart(raw, record.headers["content-type"] ?? "") ?? raw.toString("utf8");
      } else if (raw.length > 0) {
        const text = raw.toString("utf8");
        try {
          record.body = JSON.parse(text) as unknown;
        } catch {
          record.body = text;
          invalidJson = contentType.includes("json");
        }
      }
      recordOnce();
      if (res.destroyed) return;
      if (invalidJson) {
        sendJson(res, 400, errorBody("invalid JSON body", "invalid_request_error"));
        return;
      }
      respond(record, req, res, controller.signal, raw, () => {
        selfDestroyed = true;
      }).catch((error: unknown) => {
        const message = error instanceof Error ? error.message : String(error);
        if (!res.headersSent)
          sendJson(res, 500, errorBody(`fake provider error: ${message}`, "server_error"));
        else res.destroy();
      });
    });
  }

  const server = http.createServer(onRequest);
  server.on("connection", (socket: Socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => undefined);
  });
  server.on("clientError", (_error, socket) => socket.destroy());

  function close(): Promise<void> {
    if (closePromise) return closePromise;
    closing = true;
    closePromise = new Promise<void>((resolve) => {
      for (const controller of inflight) controller.abort();
      inflight.clear();
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      for (const waiter of waiters) {
        clearTimeout(waiter.timer);
        waiter.reject(new Error("fake provider closed"));
      }
      waiters.clear();
      for (const socket of sockets) socket.destroy();
      sockets.clear();
      server.close(() => resolve());
      server.closeAllConnections();
    });
    return closePromise;
  }

  return new Promise<FakeProvider>((resolve, reject) => {
    const onError = (error: Error): void => reject(error);
    server.once("error", onError);
    server.listen(options.port ?? 0, host, () => {
      server.off("error", onError);
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : (options.port ?? 0);
      const shownHost = host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host;
      const url = `http://${shownHost.includes(":") ? `[${shownHost}]` : shownHost}:${port}`;
      resolve({
        url,
        requests,
        enqueue(...newRules: FakeRule[]): void {
          for (const rule of newRules) {
            const times = rule.times ?? 1;
            if (times > 0) rules.push({ rule, remaining: times });
          }
        },
        setDefaultDelay(ms: number): void {
          defaultDelayMs = Math.max(0, ms);
        },
        chatRequests(): RecordedRequest[] {
          return requests.filter((r) => r.method === "POST" && r.path === "/chat/completions");
        },
        waitForRequests(count: number, timeoutMs = 2000): Promise<void> {
          if (requests.length >= count) return Promise.resolve();
          if (closing) return Promise.reject(new Error("fake provider closed"));
          return new Promise<void>((resolveWait, rejectWait) => {
            const waiter: Waiter = {
              count,
              resolve: resolveWait,
              reject: rejectWait,
              timer: setTimeout(() => {
                waiters.delete(waiter);
                rejectWait(
                  new Error(
                    `timed out after ${timeoutMs} ms waiting for ${count} requests (got ${requests.length})`,
                  ),
                );
              }, timeoutMs),
            };
            waiter.timer.unref();
            waiters.add(waiter);
          });
        },
        reset(): void {
          rules.length = 0;
          requests.length = 0;
          files.clear();
          defaultDelayMs = 0;
          sequence = 0;
          fileSequence = 0;
        },
        close,
      });
    });
  });
}
