/** `POST /chat/completions` of the fake provider: the JSON answer and the SSE stream, with their faults. */
import type { ServerResponse } from "node:http";
import { resolveReply, usageFor, type ResolvedReply } from "./chat-reply.js";
import type { FakeFault, FakeRule, RecordedRequest } from "./fake-types.js";
import { isRecord } from "./request-parsing.js";
import { errorBody, openEventStream, sendJson } from "./responses.js";
import type { Wait } from "./sleep.js";

/** What the JSON answer and the stream share. */
interface ChatAnswer {
  record: RecordedRequest;
  body: Record<string, unknown>;
  model: string;
  reply: ResolvedReply;
  usage: Record<string, unknown>;
  id: string;
  created: number;
  fault: FakeFault | undefined;
}

interface StreamDelta {
  delta: Record<string, unknown>;
  isContent: boolean;
}

/**
 * Answers a chat completion (`rawLength`: the request body's size in bytes) with `rule`'s reply, as
 * JSON or, for `stream: true`, as SSE; applies the rule's `slow` chunk delay and `stall_after_chunks`.
 * 400 when the body is not a JSON object.
 */
export async function handleChat(
  record: RecordedRequest,
  res: ServerResponse,
  signal: AbortSignal,
  rawLength: number,
  rule: FakeRule | undefined,
  wait: Wait,
): Promise<void> {
  const body = record.body;
  if (!isRecord(body)) {
    sendJson(res, 400, errorBody("request body must be a JSON object", "invalid_request_error"));
    return;
  }
  const reply = resolveReply(record, body, rule);
  const answer: ChatAnswer = {
    record,
    body,
    model: typeof body.model === "string" ? body.model : "unknown",
    reply,
    usage: usageFor(rawLength, reply),
    id: `chatcmpl-fake-${record.id}`,
    created: Math.floor(Date.now() / 1000),
    fault: rule?.fault,
  };
  if (body.stream === true) await streamChat(answer, res, signal, wait);
  else sendChatJson(answer, res);
}

function sendChatJson(answer: ChatAnswer, res: ServerResponse): void {
  const { record, body, reply, id } = answer;
  if (answer.fault?.kind === "stall_after_chunks") {
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
    created: answer.created,
    model: answer.model,
    choices: [{ index: 0, message, finish_reason: reply.finishReason }],
    usage: answer.usage,
  };
  if (reply.webSearch) response.web_search = reply.webSearch;
  sendJson(res, 200, response);
}

function splitChunks(text: string, size: number): string[] {
  const chars = Array.from(text);
  const step = Math.max(1, Math.floor(size));
  const out: string[] = [];
  for (let i = 0; i < chars.length; i += step) out.push(chars.slice(i, i + step).join(""));
  return out;
}

/** The stream's deltas: reasoning, then content, then one per tool call; the first carries the role. */
function streamDeltas(reply: ResolvedReply): StreamDelta[] {
  const deltas: StreamDelta[] = [];
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
  return deltas;
}

async function streamChat(
  answer: ChatAnswer,
  res: ServerResponse,
  signal: AbortSignal,
  wait: Wait,
): Promise<void> {
  const { reply, model, usage, fault } = answer;
  const deltas = streamDeltas(reply);
  const writeEvent = openEventStream(res);
  const chunkDelayMs = fault?.kind === "slow" ? (fault.chunkDelayMs ?? 0) : 0;
  const stallAfter = fault?.kind === "stall_after_chunks" ? fault.chunks : undefined;
  const base = { id: answer.id, object: "chat.completion.chunk", created: answer.created, model };
  let contentSent = 0;
  for (let i = 0; i < deltas.length; i++) {
    const item = deltas[i];
    if (item === undefined) continue;
    if (stallAfter !== undefined && item.isContent && contentSent >= stallAfter) return; // silent forever
    if (i > 0 && !(await wait(chunkDelayMs, signal))) return;
    const chunk: Record<string, unknown> = {
      ...base,
      choices: [{ index: 0, delta: item.delta, finish_reason: null }],
    };
    if (i === 0 && reply.webSearch) chunk.web_search = reply.webSearch;
    if (!writeEvent(chunk)) return;
    if (item.isContent) contentSent += 1;
  }
  if (stallAfter !== undefined) return; // fewer content chunks than N: stall before the final chunk
  if (!(await wait(chunkDelayMs, signal))) return;
  const kimiStyle = model.startsWith("kimi") || model.startsWith("moonshot");
  const finalChoice: Record<string, unknown> = { index: 0, delta: {}, finish_reason: reply.finishReason };
  if (kimiStyle) finalChoice.usage = usage;
  if (!writeEvent({ ...base, choices: [finalChoice], usage })) return;
  res.end("data: [DONE]\n\n");
}
