/**
 * kimi_multi_file_chat — uploads and extracts files with Moonshot file-extract, then asks Kimi the
 * prompt with each file's extracted content as its own system message (Moonshot's documented
 * pattern: "the content, not the file id"; platform.moonshot.ai file-based QA guide).
 */
import { z } from "zod";
import { THINKING_MODES, type ChatMessage, type ThinkingMode } from "../providers/types.js";
import { defaultTemperature, oversizedPrompt, usageJson } from "./common.js";
import { defineTool } from "./framework.js";
import { extractFiles, uploadFilesField } from "./kimi-upload-and-extract.js";
import { resolveProviderModel, providerModelSelector } from "./provider-support.js";

const TOOL = "kimi_multi_file_chat";

export const FILE_CHAT_SYSTEM_PROMPT =
  "You are Kimi, consulted by an AI coding agent. The following system messages hold the extracted content of files. Answer from them, name the file you cite, and say when they do not contain the answer.";

export const kimiModelField = z.string().optional().describe("Kimi model (default kimi-k2.6)");

const schema = z.object({
  prompt: z.string().min(1).describe("Question about the files"),
  files: uploadFilesField,
  model: kimiModelField,
  thinking_mode: z.enum(THINKING_MODES as unknown as [ThinkingMode, ...ThinkingMode[]]).optional(),
});

export const kimiMultiFileChatTool = defineTool({
  name: TOOL,
  kind: "simple",
  description: "Ask Kimi about files: uploads them once (file-extract) and chats with their content.",
  annotations: { title: "Kimi: chat about files", openWorldHint: true },
  schema,
  selectModel: providerModelSelector("kimi", TOOL, "prompt"),
  async run(args, context) {
    const oversized = oversizedPrompt("prompt", args.prompt);
    if (oversized) return oversized;
    const model = context.model ?? resolveProviderModel(context.services, "kimi", args.model, TOOL);
    const results = await extractFiles(context, args.files, TOOL);
    const seen = new Set<string>();
    const fileMessages: ChatMessage[] = [];
    for (const { extracted } of results) {
      if (seen.has(extracted.fileId)) continue;
      seen.add(extracted.fileId);
      fileMessages.push({ role: "system", content: extracted.raw });
    }
    context.progress(`calling ${model.model.id}`);
    const result = await context.callModel({
      model,
      messages: [
        { role: "system", content: FILE_CHAT_SYSTEM_PROMPT },
        ...fileMessages,
        { role: "user", content: args.prompt },
      ],
      temperature: defaultTemperature(model, undefined),
      thinkingMode: args.thinking_mode ?? "minimal",
    });
    return {
      status: "success",
      content: result.content,
      files: results.map(({ file, extracted }) => ({
        path: file.path,
        file_id: extracted.fileId,
        reused_upload: extracted.reused,
      })),
      usage: usageJson(result),
      metadata: {
        model_used: result.model,
        provider_used: result.provider,
        attempts: result.attempts.length,
      },
    };
  },
});
