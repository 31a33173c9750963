/**
 * chat — a conversation with another model (SPEC §4.1): prompt, optional files and images,
 * continuation across calls. The reply and a continuation_id come back.
 */
import { z } from "zod";
import {
  continuationField,
  defaultTemperature,
  filesField,
  imageParts,
  imagesField,
  modelField,
  oversizedPrompt,
  pickModel,
  prepareContext,
  recordTurns,
  temperatureField,
  thinkingModeField,
  usageJson,
  userMessage,
  webSearchField,
} from "./common.js";
import { defineTool } from "./framework.js";

export const CHAT_SYSTEM_PROMPT = `You are a senior engineer consulted by another AI coding agent. Give direct, technically precise answers.
When files are provided they appear with line numbers; cite them as path:line. If the question is ambiguous, state your assumption.
Prefer concrete code over generalities. Keep the answer as short as the question allows.`;

const schema = z.object({
  prompt: z.string().min(1).describe("Your question or idea, with context"),
  files: filesField,
  images: imagesField,
  continuation_id: continuationField,
  model: modelField,
  temperature: temperatureField,
  thinking_mode: thinkingModeField,
  use_websearch: webSearchField,
});

export const chatTool = defineTool({
  name: "chat",
  kind: "simple",
  description:
    "Ask another model (GLM, Kimi, custom) a question, brainstorm, or get a second opinion. Pass files as absolute paths; reuse continuation_id to keep the conversation.",
  annotations: { title: "Chat with another model", readOnlyHint: true, openWorldHint: true },
  schema,
  selectModel: (args, services) =>
    args.prompt.length > 60_000 ? undefined : pickModel(services, args.model, args.prompt),
  async run(args, context) {
    const oversized = oversizedPrompt("prompt", args.prompt);
    if (oversized) return oversized;
    const model = context.model ?? pickModel(context.services, args.model, args.prompt);
    const prepared = await prepareContext(context, model, {
      continuationId: args.continuation_id,
      files: args.files,
      promptText: args.prompt,
    });
    const images = await imageParts(context, model, args.images);
    const text = prepared.contextText
      ? `${prepared.contextText}\n\n=== NEW REQUEST ===\n${args.prompt}`
      : args.prompt;
    context.progress(`calling ${model.model.id}`);
    const result = await context.callModel({
      model,
      messages: [{ role: "system", content: CHAT_SYSTEM_PROMPT }, userMessage(text, images)],
      temperature: defaultTemperature(model, args.temperature),
      thinkingMode: args.thinking_mode ?? "minimal",
      webSearch: args.use_websearch ?? false,
    });
    const continuationId = await recordTurns(context.services, prepared.thread, "chat", [
      { role: "user", toolName: "chat", content: args.prompt, files: prepared.filesIncluded },
      {
        role: "assistant",
        toolName: "chat",
        content: result.content,
        model: result.model,
        provider: result.provider,
      },
    ]);
    return {
      status: "success",
      content: result.content,
      continuation_id: continuationId,
      ...(prepared.filesSkipped.length > 0 ? { files_skipped: prepared.filesSkipped } : {}),
      usage: usageJson(result),
      ...(result.webSearch ? { web_search: result.webSearch } : {}),
      metadata: {
        model_used: result.model,
        provider_used: result.provider,
        attempts: result.attempts.length,
        history_turns: prepared.historyTurns,
        ...(model.note ? { model_note: model.note } : {}),
      },
    };
  },
});
