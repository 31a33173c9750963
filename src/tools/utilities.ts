/**
 * Utility tools without a model call (SPEC §4.1):
 * - provider_capabilities — what each provider can do here: configured, whether a key is present
 *   (a boolean, never any part of it), models with capabilities, web search / files / thinking.
 *   No base URLs, timeouts or pool sizes.
 * - status — live figures of this server: mode, uptime, calls in flight, admission per cap (sessions
 *   as counts: a session id is a credential), calls by outcome, configured providers, data dir,
 *   listed tools.
 */
import { z } from "zod";
import type { ProviderName } from "../config/load.js";
import { PROVIDER_NAMES } from "../config/load.js";
import type { ModelInfo } from "../providers/registry.js";
import { defineTool } from "./framework.js";

/**
 * Provider features, from the provider docs: docs.z.ai api-reference (chat completions, tools/web-search,
 * agents/file-upload) and platform.moonshot.ai guides (use-web-search, files, models-overview).
 */
const FEATURES: Record<ProviderName, Record<string, string | false>> = {
  glm: {
    web_search: "web_search tool in chat (use_websearch); standalone POST /web_search (glm_web_search)",
    files: 'POST /files, purpose "file" (glm_upload_file)',
    thinking: 'thinking {type: enabled|disabled}; reasoning_effort on models with thinking="effort"',
    tool_choice: '"auto" only',
  },
  kimi: {
    web_search: "builtin $web_search, answered by exai's tool-call loop (use_websearch)",
    files: 'POST /files, purpose "file-extract", text via GET /files/{id}/content (kimi_* tools)',
    thinking: "thinking {type: enabled|disabled} on kimi-k2.5 / k2.6; off while searching",
    tool_choice: "auto | none | required | a named function",
  },
  custom: {
    web_search: false,
    files: false,
    thinking: false,
    tool_choice: "as the endpoint supports",
  },
};

function modelCapabilities(model: ModelInfo) {
  return {
    id: model.id,
    context_window: model.contextWindow,
    max_output: model.maxOutput,
    thinking: model.thinking,
    images: model.images,
    web_search: model.webSearch,
    temperature: model.temperature ? [model.temperature.min, model.temperature.max] : "fixed",
    ...(model.aliases.length > 0 ? { aliases: model.aliases } : {}),
  };
}

export const providerCapabilitiesTool = defineTool({
  name: "provider_capabilities",
  kind: "utility",
  description:
    "Per provider: configured, key present (yes/no), models with capabilities, web search, files, thinking.",
  annotations: { title: "Provider capabilities", readOnlyHint: true },
  schema: z.object({}),
  async run(_args, context) {
    const { config, registry } = context.services;
    const available = registry.available();
    const catalogue = registry.catalogue();
    const providers = PROVIDER_NAMES.map((name) => {
      const settings = config.providers[name];
      const configured = settings !== undefined;
      // The custom endpoint runs without a key; config stores the placeholder "not-needed" then.
      const keyPresent = configured && settings.apiKey !== "" && settings.apiKey !== "not-needed";
      const models = (configured ? available : catalogue).filter((model) => model.provider === name);
      return {
        provider: name,
        configured,
        key_present: keyPresent,
        ...FEATURES[name],
        models: models.map(modelCapabilities),
      };
    });
    return { status: "success", providers };
  },
});

export const statusTool = defineTool({
  name: "status",
  kind: "utility",
  description: "Server status: mode, uptime, calls in flight, admission caps, calls by outcome, providers.",
  annotations: { title: "Status", readOnlyHint: true },
  schema: z.object({}),
  async run(_args, context) {
    const { config, registry } = context.services;
    const stats = context.services.stats();
    return {
      status: "success",
      mode: stats.mode,
      uptime_s: Math.round((Date.now() - stats.startedAt) / 1000),
      inflight: stats.inflight,
      // Session ids resume and cancel sessions: another client must never read them. Only counts.
      admission: {
        ...stats.admission,
        session: {
          sessions_with_calls: Object.keys(stats.admission.session).length,
          inflight: Object.values(stats.admission.session).reduce((sum, cap) => sum + cap.inflight, 0),
          cap_per_session: config.admission.session,
        },
      },
      calls: { total: stats.calls.total, by_outcome: stats.calls.byOutcome },
      configured_providers: registry.configuredProviders(),
      data_dir: config.dataDir,
      tool_profile: config.tools.profile,
      tools: stats.tools,
    };
  },
});
