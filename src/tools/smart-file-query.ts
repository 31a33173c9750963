/**
 * smart_file_query (full profile) — ask a question about one file. The file's content sha256 is
 * looked up in the Store: a known upload's Moonshot file id is reused, otherwise the file is
 * uploaded once (file-extract) and recorded; then its extracted text goes to the model with the
 * question. Asking again about unchanged content never uploads it again.
 */
import { z } from "zod";
import { defaultTemperature, oversizedPrompt, usageJson } from "./common.js";
import { defineTool } from "./framework.js";
import { FILE_CHAT_SYSTEM_PROMPT, kimiModelField } from "./kimi-multi-file-chat.js";
import {
  readLocalFiles,
  requireProvider,
  resolveProviderModel,
  uploadAndExtract,
  providerModelSelector,
} from "./provider-support.js";
import { invalidArgument } from "../base/errors.js";

const TOOL = "smart_file_query";

const schema = z.object({
  file: z.string().min(1).describe("Absolute path"),
  question: z.string().min(1),
  model: kimiModelField,
});

export const smartFileQueryTool = defineTool({
  name: TOOL,
  kind: "simple",
  description: "Ask Kimi about a file; each content (sha256) is uploaded once and reused.",
  annotations: { title: "Smart file query", openWorldHint: true },
  schema,
  selectModel: providerModelSelector("kimi", TOOL, "question"),
  async run(args, context) {
    const oversized = oversizedPrompt("question", args.question);
    if (oversized) return oversized;
    requireProvider(context.services, "kimi", TOOL);
    const model = context.model ?? resolveProviderModel(context.services, "kimi", args.model, TOOL);
    const files = await readLocalFiles(context, [args.file], "file");
    const file = files[0];
    if (!file || files.length > 1) {
      throw invalidArgument("file", `${args.file} is a directory; pass the path of one file`);
    }
    const extracted = await uploadAndExtract(context, file);
    context.progress(`calling ${model.model.id}`);
    const result = await context.callModel({
      model,
      messages: [
        { role: "system", content: FILE_CHAT_SYSTEM_PROMPT },
        { role: "system", content: extracted.raw },
        { role: "user", content: args.question },
      ],
      temperature: defaultTemperature(model, undefined),
      thinkingMode: "minimal",
    });
    return {
      status: "success",
      content: result.content,
      file: {
        path: file.path,
        sha256: file.sha256,
        file_id: extracted.fileId,
        reused_upload: extracted.reused,
      },
      usage: usageJson(result),
      metadata: {
        model_used: result.model,
        provider_used: result.provider,
        attempts: result.attempts.length,
      },
    };
  },
});
