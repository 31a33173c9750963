/**
 * listmodels — no model: the models available with the configured providers, with capabilities,
 * aliases and what `auto` resolves to.
 */
import { z } from "zod";
import { ExaiError } from "../base/errors.js";
import { defineTool } from "./framework.js";

const schema = z.object({
  include_unconfigured: z
    .boolean()
    .optional()
    .describe("Also list catalogue models of providers that are not configured"),
});

export const listmodelsTool = defineTool({
  name: "listmodels",
  kind: "utility",
  description:
    "List available models (by provider) with context window, thinking, vision and web-search support, and aliases.",
  annotations: { title: "List models", readOnlyHint: true },
  schema,
  async run(args, context) {
    const { registry, config } = context.services;
    const configured = registry.configuredProviders();
    const models = args.include_unconfigured
      ? [...registry.catalogue(), ...registry.available().filter((m) => m.provider === "custom")]
      : registry.available();
    let auto: string | undefined;
    try {
      auto = registry.resolve("auto").model.id;
    } catch (error) {
      // No provider configured: auto has nothing to resolve to, which the result says.
      if (!ExaiError.is(error)) throw error;
    }
    return {
      status: "success",
      configured_providers: configured,
      default_model: config.defaultModel,
      auto_resolves_to: auto ?? null,
      models: models.map((model) => ({
        id: model.id,
        provider: model.provider,
        configured: configured.includes(model.provider),
        context_window: model.contextWindow,
        max_output: model.maxOutput,
        thinking: model.thinking,
        images: model.images,
        web_search: model.webSearch,
        aliases: model.aliases,
        description: model.description,
      })),
      ...(configured.length === 0
        ? {
            hint: "No provider configured: set GLM_API_KEY, KIMI_API_KEY or CUSTOM_API_URL (+ CUSTOM_MODEL_NAME).",
          }
        : {}),
    };
  },
});
