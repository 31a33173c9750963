/**
 * GLM (Z.ai / ZhipuAI) dialect. Source: Z.ai chat-completions reference — `thinking:
 * {type: enabled|disabled}` (GLM-4.5 and later), `tool_choice` only "auto", `max_tokens`,
 * web search as the tool `{type:"web_search", web_search:{…}}`, `reasoning_content` deltas,
 * usage in the last stream chunk.
 */
import type { ProviderSettings } from "../config/load.js";
import {
  createOpenAICompatibleProvider,
  thinkingFields,
  type Dialect,
  type Provider,
  type ProviderDependencies,
} from "./openai-compatible.js";

/** The GLM web-search tool declaration (SPEC §5). */
export const GLM_WEB_SEARCH_TOOL = {
  type: "web_search",
  web_search: { enable: true, search_engine: "search_pro_jina", search_result: true },
} as const;

export const glmDialect: Dialect = {
  label: "GLM",
  keyVariable: "GLM_API_KEY",
  timeoutVariable: "GLM_TIMEOUT_SECS",
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
