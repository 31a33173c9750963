/**
 * glm_payload_preview — no network: the exact chat-completions request exai would send to GLM for
 * a chat call with these settings (system prompt, thinking switch, web_search tool, temperature,
 * `stream: true`). Built by the provider's own `previewBody`, the function `chat` uses, so the
 * preview cannot drift from what is really sent. The API key is never shown.
 */
import { z } from "zod";
import { CHAT_SYSTEM_PROMPT } from "./chat.js";
import { THINKING_MODES, type ThinkingMode } from "../providers/types.js";
import { defaultTemperature, oversizedPrompt } from "./common.js";
import { defineTool } from "./framework.js";
import { requireProvider, resolveProviderModel } from "./provider-support.js";

const TOOL = "glm_payload_preview";

const schema = z.object({
  prompt: z.string().min(1).describe("The prompt chat would send"),
  model: z.string().optional().describe("GLM model"),
  thinking_mode: z.enum(THINKING_MODES as unknown as [ThinkingMode, ...ThinkingMode[]]).optional(),
  use_websearch: z.boolean().optional(),
  temperature: z.number().min(0).max(1).optional(),
});

export const glmPayloadPreviewTool = defineTool({
  name: TOOL,
  kind: "utility",
  description:
    "Show the exact GLM chat-completions body a chat call would send (thinking, web_search tool…). No network.",
  annotations: { title: "GLM: payload preview", readOnlyHint: true },
  schema,
  async run(args, context) {
    const oversized = oversizedPrompt("prompt", args.prompt);
    if (oversized) return oversized;
    requireProvider(context.services, "glm", TOOL);
    const model = resolveProviderModel(context.services, "glm", args.model, TOOL);
    const body = context.previewChatBody({
      model,
      messages: [
        { role: "system", content: CHAT_SYSTEM_PROMPT },
        { role: "user", content: args.prompt },
      ],
      temperature: defaultTemperature(model, args.temperature),
      // The same defaults as the chat tool.
      thinkingMode: args.thinking_mode ?? "minimal",
      webSearch: args.use_websearch ?? false,
    });
    return {
      status: "success",
      method: "POST",
      path: "/chat/completions",
      headers: {
        Authorization: "Bearer <GLM_API_KEY>",
        "Content-Type": "application/json",
        "X-Request-Id": "<trace_id of the call>",
      },
      body,
      metadata: {
        model_used: model.model.id,
        provider_used: "glm",
        ...(model.note ? { model_note: model.note } : {}),
      },
    };
  },
});
