/**
 * kimi_intent_analysis — asks Kimi to classify a user request: what is wanted, whether it needs
 * fresh web information, how complex it is, and which exai tool and model fit. The model is asked
 * for JSON; its answer is parsed robustly (code fences, prose around the object) and a model that
 * answers in prose gets `{raw}` back instead of an error.
 */
import { z } from "zod";
import { oversizedPrompt, usageJson } from "./common.js";
import { defineTool } from "./framework.js";
import { kimiModelField } from "./kimi-multi-file-chat.js";
import { resolveProviderModel, providerModelSelector } from "./provider-support.js";

const TOOL = "kimi_intent_analysis";

/** The tools the classifier may suggest (the ones a user request maps to). */
const SUGGESTABLE_TOOLS = [
  "chat",
  "thinkdeep",
  "analyze",
  "debug",
  "codereview",
  "refactor",
  "secaudit",
  "testgen",
  "precommit",
  "planner",
  "consensus",
  "docgen",
  "tracer",
  "kimi_multi_file_chat",
  "glm_web_search",
];

const schema = z.object({
  prompt: z.string().min(1).describe("The request to classify"),
  model: kimiModelField,
});

/** What the classifier returns when it follows the instructions. */
const analysisSchema = z.object({
  intent: z.string(),
  needs_websearch: z.boolean(),
  complexity: z.enum(["low", "medium", "high"]),
  suggested_tool: z.string(),
  suggested_model: z.string(),
});

function systemPrompt(models: readonly string[]): string {
  return `Classify the user's request for an AI coding assistant. Reply with ONE JSON object and nothing else:
{"intent": "<short phrase>", "needs_websearch": <true if it needs information newer than your training or from the web>, "complexity": "low"|"medium"|"high", "suggested_tool": one of ${JSON.stringify(SUGGESTABLE_TOOLS)}, "suggested_model": one of ${JSON.stringify(models)}}`;
}

/**
 * Parses a model's JSON answer: the whole text, else a fenced ```json block, else the first
 * balanced `{…}` in it. Returns undefined when there is no JSON object.
 */
export function parseJsonObject(text: string): Record<string, unknown> | undefined {
  const candidates = [text.trim()];
  const fenced = /```(?:json)?\s*([\s\S]*?)```/i.exec(text);
  if (fenced?.[1]) candidates.push(fenced[1].trim());
  const balanced = firstBalancedObject(text);
  if (balanced) candidates.push(balanced);
  for (const candidate of candidates) {
    try {
      const parsed: unknown = JSON.parse(candidate);
      if (parsed !== null && typeof parsed === "object" && !Array.isArray(parsed))
        return parsed as Record<string, unknown>;
    } catch {
      // Not JSON: try the next candidate.
    }
  }
  return undefined;
}

/** The first `{…}` with balanced braces (string-aware), or undefined. */
function firstBalancedObject(text: string): string | undefined {
  const start = text.indexOf("{");
  if (start < 0) return undefined;
  let depth = 0;
  let inString = false;
  for (let index = start; index < text.length; index++) {
    const char = text[index];
    if (inString) {
      if (char === "\\") index++;
      else if (char === '"') inString = false;
    } else if (char === '"') inString = true;
    else if (char === "{") depth++;
    else if (char === "}" && --depth === 0) return text.slice(start, index + 1);
  }
  return undefined;
}

/** Normalises loosely typed answers ("true", "High") before validation. */
function normalise(value: Record<string, unknown>): Record<string, unknown> {
  const out = { ...value };
  if (typeof out.needs_websearch === "string")
    out.needs_websearch = out.needs_websearch.toLowerCase() === "true";
  if (typeof out.complexity === "string") out.complexity = out.complexity.toLowerCase();
  return out;
}

export const kimiIntentAnalysisTool = defineTool({
  name: TOOL,
  kind: "simple",
  description:
    "Classify a request with Kimi: intent, needs_websearch, complexity, suggested_tool, suggested_model (JSON).",
  annotations: { title: "Kimi: intent analysis", readOnlyHint: true, openWorldHint: true },
  schema,
  selectModel: providerModelSelector("kimi", TOOL, "prompt"),
  async run(args, context) {
    const oversized = oversizedPrompt("prompt", args.prompt);
    if (oversized) return oversized;
    const model = context.model ?? resolveProviderModel(context.services, "kimi", args.model, TOOL);
    const models = context.services.registry.available().map((item) => item.id);
    context.progress(`calling ${model.model.id}`);
    const result = await context.callModel({
      model,
      messages: [
        { role: "system", content: systemPrompt(models) },
        { role: "user", content: args.prompt },
      ],
      // Classification needs no reasoning, and 0 keeps it repeatable where the model allows it.
      thinkingMode: "minimal",
      temperature: model.model.temperature ? 0 : undefined,
      maxTokens: 400,
    });
    const parsed = parseJsonObject(result.content);
    const valid = parsed ? analysisSchema.safeParse(normalise(parsed)) : undefined;
    return {
      status: "success",
      // Valid → the fields; JSON of another shape → as parsed; prose → {raw}.
      analysis: valid?.success ? valid.data : (parsed ?? { raw: result.content }),
      schema_valid: valid?.success ?? false,
      usage: usageJson(result),
      metadata: { model_used: result.model, provider_used: result.provider },
    };
  },
});
