/**
 * Any OpenAI-compatible endpoint (Ollama, vLLM, OpenRouter, LM Studio): plain chat completions,
 * no provider-specific fields.
 */
import type { ProviderSettings } from "../config/load.js";
import { createOpenAICompatibleProvider } from "./openai-compatible.js";
import type { Dialect, Provider, ProviderDependencies } from "./types.js";

export const customDialect: Dialect = {
  label: "custom",
  keyVariable: "CUSTOM_API_KEY",
  timeoutVariable: "CUSTOM_TIMEOUT_SECS",
  shapeBody() {
    // Plain OpenAI-compatible body: nothing to add.
  },
};

/** Creates the custom-endpoint provider. */
export function createCustomProvider(
  settings: ProviderSettings,
  dependencies: ProviderDependencies,
): Provider {
  return createOpenAICompatibleProvider(settings, customDialect, dependencies);
}
