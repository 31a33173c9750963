/**
 * Kimi (Moonshot) dialect. Source: Moonshot platform docs — `thinking: {type}` on kimi-k2.5 /
 * k2.6 (temperature fixed by the provider, so never sent), `reasoning_content` deltas, the builtin
 * `$web_search` tool: when the model answers `finish_reason: "tool_calls"` naming `$web_search`,
 * the client sends back a `tool` message whose content is the call's arguments unchanged and asks
 * again (thinking must be off while searching). Files: `POST /files` purpose `file-extract`.
 * `Idempotency-Key`: one key per logical request, reused only by its retries.
 */
import type { ProviderSettings } from "../config/load.js";
import { ExaiError } from "../base/errors.js";
import type { ProviderErrorClass, ProviderErrorInfo } from "./error-classification.js";
import { createOpenAICompatibleProvider } from "./openai-compatible.js";
import { thinkingFields } from "./request.js";
import type { ChatMessage, ChatResult, Dialect, Provider, ProviderDependencies } from "./types.js";

const KIMI_WEB_SEARCH_TOOL = { type: "builtin_function", function: { name: "$web_search" } } as const;
/** Upper bound on `$web_search` round trips in one call (each is also bounded by the deadline). */
export const KIMI_MAX_SEARCH_ROUNDS = 4;

/**
 * Moonshot's error types (platform.moonshot.ai error codes): exceeded_current_quota_error (the
 * account is out of credit: not retried), rate_limit_reached_error (retried),
 * engine_overloaded_error / server_error (transient); the rest follow the shared rules.
 */
export function classifyKimiError(error: ProviderErrorInfo): ProviderErrorClass | undefined {
  switch (error.type) {
    case "exceeded_current_quota_error":
      return "quota";
    case "rate_limit_reached_error":
      return "rate_limited";
    case "engine_overloaded_error":
    case "server_error":
      return "transient";
    default:
      return undefined;
  }
}

export const kimiDialect: Dialect = {
  label: "Kimi",
  keyVariable: "KIMI_API_KEY",
  timeoutVariable: "KIMI_TIMEOUT_SECS",
  shapeBody(request, body) {
    if (request.webSearch) {
      const tools = Array.isArray(body.tools) ? (body.tools as unknown[]) : [];
      const declared = tools.some(
        (tool) => (tool as { function?: { name?: string } }).function?.name === "$web_search",
      );
      body.tools = declared ? tools : [...tools, KIMI_WEB_SEARCH_TOOL];
      if (request.model.thinking !== "none") body.thinking = { type: "disabled" };
    } else {
      Object.assign(body, thinkingFields(request.model, request.thinkingMode));
    }
  },
  headers(_context, idempotencyKey): Record<string, string> {
    return { "Idempotency-Key": idempotencyKey };
  },
  classifyError: classifyKimiError,
};

/**
 * Creates the Kimi provider. With `webSearch`, `chat` runs the `$web_search` loop: at most
 * KIMI_MAX_SEARCH_ROUNDS rounds, every round inside the call's deadline, each attempt bounded by
 * KIMI_WEB_SEARCH_TIMEOUT_SECS. Tool calls other than `$web_search` are returned to the caller.
 */
export function createKimiProvider(
  settings: ProviderSettings,
  dependencies: ProviderDependencies & { webSearchTimeoutMs: number },
): Provider {
  const base = createOpenAICompatibleProvider(settings, kimiDialect, dependencies);
  return {
    ...base,
    async chat(request, context) {
      const declaresSearch = (request.tools ?? []).some(
        (tool) => (tool as { function?: { name?: string } }).function?.name === "$web_search",
      );
      if (!request.webSearch && !declaresSearch) return base.chat(request, context);
      const messages: ChatMessage[] = [...request.messages];
      const attempts: ChatResult["attempts"] = [];
      const usage = { promptTokens: 0, completionTokens: 0, totalTokens: 0 };
      for (let round = 1; round <= KIMI_MAX_SEARCH_ROUNDS; round++) {
        context.onProgress?.(`Kimi web search round ${round}`);
        const result = await base.chat(
          { ...request, messages, webSearch: true, attemptTimeoutMs: dependencies.webSearchTimeoutMs },
          context,
        );
        attempts.push(...result.attempts);
        usage.promptTokens += result.usage.promptTokens;
        usage.completionTokens += result.usage.completionTokens;
        usage.totalTokens += result.usage.totalTokens;
        const searches = result.toolCalls.filter((call) => call.function.name === "$web_search");
        if (
          result.finishReason !== "tool_calls" ||
          searches.length === 0 ||
          searches.length !== result.toolCalls.length
        ) {
          return { ...result, attempts, usage, rounds: round };
        }
        messages.push({ role: "assistant", content: result.content, tool_calls: result.toolCalls });
        for (const call of searches) {
          // Moonshot's contract: echo the arguments unchanged; the search runs on their side.
          messages.push({
            role: "tool",
            tool_call_id: call.id,
            name: call.function.name,
            content: call.function.arguments,
          });
        }
      }
      throw new ExaiError(
        "PROVIDER_ERROR",
        `Kimi: still asking for $web_search after ${KIMI_MAX_SEARCH_ROUNDS} rounds; ask a narrower question or turn use_websearch off`,
        { details: { provider: "kimi", rounds: KIMI_MAX_SEARCH_ROUNDS } },
      );
    },
  };
}
