/**
 * kimi_capture_headers — one Kimi chat call that returns the provider's response headers next to
 * the reply: request / trace ids (for support tickets), rate-limit headers, content type. Request
 * credentials are never part of a response; cookies are dropped by the provider layer.
 */
import { z } from "zod";
import { oversizedPrompt, usageJson } from "./common.js";
import { defineTool } from "./framework.js";
import { kimiModelField } from "./kimi-multi-file-chat.js";
import { resolveProviderModel, providerModelSelector } from "./provider-support.js";

const TOOL = "kimi_capture_headers";

/** Header names worth showing: ids, rate limits, retry hints, content type, timing. */
const INTERESTING =
  /request-id|trace-id|traceid|ratelimit|rate-limit|retry-after|^content-type$|^date$|^server$|processing/;

const schema = z.object({
  prompt: z.string().min(1).optional().describe("Default: a short ping"),
  model: kimiModelField,
});

/** Splits headers into ids, rate limits and the rest of the interesting ones. */
function groupHeaders(headers: Record<string, string>): {
  request_ids: Record<string, string>;
  rate_limit: Record<string, string>;
  other: Record<string, string>;
} {
  const groups = { request_ids: {}, rate_limit: {}, other: {} } as ReturnType<typeof groupHeaders>;
  for (const [name, value] of Object.entries(headers)) {
    if (!INTERESTING.test(name)) continue;
    if (/request-id|trace-id|traceid/.test(name)) groups.request_ids[name] = value;
    else if (/ratelimit|rate-limit|retry-after/.test(name)) groups.rate_limit[name] = value;
    else groups.other[name] = value;
  }
  return groups;
}

export const kimiCaptureHeadersTool = defineTool({
  name: TOOL,
  kind: "simple",
  description: "One Kimi call that returns the response headers: request id, rate limits, content type.",
  annotations: { title: "Kimi: capture headers", readOnlyHint: true, openWorldHint: true },
  schema,
  selectModel: providerModelSelector("kimi", TOOL, "prompt"),
  async run(args, context) {
    const oversized = oversizedPrompt("prompt", args.prompt);
    if (oversized) return oversized;
    const model = context.model ?? resolveProviderModel(context.services, "kimi", args.model, TOOL);
    context.progress(`calling ${model.model.id}`);
    const result = await context.callModel({
      model,
      messages: [{ role: "user", content: args.prompt ?? "Reply with the single word: pong" }],
      thinkingMode: "minimal",
      maxTokens: args.prompt === undefined ? 16 : undefined,
      captureHeaders: true,
    });
    const headers = result.headers ?? {};
    return {
      status: "success",
      content: result.content,
      headers: groupHeaders(headers),
      ...(result.requestId ? { provider_request_id: result.requestId } : {}),
      sent_request_id: context.traceId,
      usage: usageJson(result),
      metadata: { model_used: result.model, provider_used: result.provider },
    };
  },
});
