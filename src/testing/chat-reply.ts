/** The fake provider's chat completion answer: a scripted or default reply in the request's dialect, and its usage. */
import type { FakeReply, FakeRule, RecordedRequest } from "./fake-types.js";
import { isRecord } from "./request-parsing.js";
import { fakeSearchResults, type WebSearchItem } from "./web-search.js";

/** A tool call of the answer (`type` "function", or "builtin_function" for Kimi's `$web_search`). */
export interface OutToolCall {
  id: string;
  type: string;
  name: string;
  arguments: string;
}

/** A reply with every default filled in. */
export interface ResolvedReply {
  content: string;
  reasoning: string;
  toolCalls: OutToolCall[];
  finishReason: string;
  chunkSize: number;
  webSearch?: WebSearchItem[];
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

function approxTokens(chars: number): number {
  return Math.max(1, Math.ceil(chars / 4));
}

/**
 * The answer to chat completion `record` (parsed body `body`): the rule's reply (or its function's
 * result) with defaults: an echo of the last user message, reasoning for thinking requests, a Kimi
 * `$web_search` tool call (then, after the tool message, an answer), GLM web_search results.
 */
export function resolveReply(
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
  const thinking = (model.includes("thinking") || thinkingType === "enabled") && thinkingType !== "disabled";
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

/** Usage counted in approximate tokens (4 characters each) of the request (`rawLength` bytes) and the reply. */
export function usageFor(rawLength: number, reply: ResolvedReply): Record<string, unknown> {
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
