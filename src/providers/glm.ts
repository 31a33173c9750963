/**
 * GLM (Z.ai / ZhipuAI) dialect. Source: Z.ai chat-completions reference — `thinking:
 * {type: enabled|disabled}` (GLM-4.5 and later), `tool_choice` only "auto", `max_tokens`,
 * web search as the tool `{type:"web_search", web_search:{…}}`, `reasoning_content` deltas,
 * usage in the last stream chunk.
 */
import type { ProviderSettings } from "../config/load.js";
import type { ProviderErrorClass, ProviderErrorInfo } from "./error-classification.js";
import { createOpenAICompatibleProvider } from "./openai-compatible.js";
import { thinkingFields } from "./request.js";
import type { Dialect, Provider, ProviderDependencies } from "./types.js";

/** The GLM web-search tool declaration (SPEC §5). */
const GLM_WEB_SEARCH_TOOL = {
  type: "web_search",
  web_search: { enable: true, search_engine: "search_pro_jina", search_result: true },
} as const;

/** Z.ai business codes (docs.z.ai error codes): rate limits and concurrency caps, retried. */
const GLM_RATE_LIMIT_CODES = new Set(["1302", "1303", "1305", "1312"]);
/** Account out of credit or in arrears: not retried. */
const GLM_QUOTA_CODES = new Set(["1113"]);

/**
 * Z.ai's business codes: 1302/1303/1305/1312 rate limits (retryable), 1113 quota (not), 1301
 * content filter and other 1xxx codes the provider's considered answer (not retried).
 */
export function classifyGlmError(error: ProviderErrorInfo): ProviderErrorClass | undefined {
  if (error.code === undefined) return undefined;
  if (GLM_RATE_LIMIT_CODES.has(error.code)) return "rate_limited";
  if (GLM_QUOTA_CODES.has(error.code)) return "quota";
  if (/^1\d{3}$/.test(error.code)) return "final";
  return undefined;
}

export const glmDialect: Dialect = {
  label: "GLM",
  keyVariable: "GLM_API_KEY",
  timeoutVariable: "GLM_TIMEOUT_SECS",
  classifyError: classifyGlmError,
  shapeBody(request, body) {
    Object.assign(body, thinkingFields(request.model, request.thinkingMode));
    if (request.webSearch) {
      const tools = Array.isArray(body.tools) ? (body.tools as unknown[]) : [];
      body.tools = [...tools, GLM_WEB_SEARCH_TOOL];
    }
    // GLM accepts only tool_choice "auto".
    if (Array.isArray(body.tools) && body.tools.length > 0) body.tool_choice = "auto";
    else delete body.tool_choice;
  },
};

/** Creates the GLM provider. */
export function createGlmProvider(settings: ProviderSettings, dependencies: ProviderDependencies): Provider {
  return createOpenAICompatibleProvider(settings, glmDialect, dependencies);
}
