/**
 * Pieces shared by the model-calling tools: the common input fields, model selection, the
 * oversized-prompt check, and the conversation + files context that goes into a model request
 * (SPEC §4.3, §4.4).
 */
import { z } from "zod";
import { ExaiError, invalidArgument } from "../base/errors.js";
import { readImage } from "../files/image.js";
import { buildConversationContext, planBudget } from "../memory/conversation.js";
import type { ChatMessage, ChatResult, ContentPart, ThinkingMode } from "../providers/types.js";
import { THINKING_MODES } from "../providers/types.js";
import type { ResolvedModel } from "../providers/registry.js";
import type { NewTurn, Thread } from "../store/store.js";
import type { Services, ToolContext } from "./framework.js";

/** Prompts longer than this must be sent as a file (SPEC §4.4, the anchors' MCP transport limit). */
const MAX_PROMPT_CHARS = 60_000;

export const modelField = z
  .string()
  .min(1)
  .optional()
  .describe("Model or alias (see listmodels); default auto");
export const temperatureField = z
  .number()
  .min(0)
  .max(1)
  .optional()
  .describe("0 = deterministic, 1 = creative");
export const thinkingModeField = z
  .enum(THINKING_MODES as unknown as [ThinkingMode, ...ThinkingMode[]])
  .optional()
  .describe("Reasoning depth (minimal = off)");
export const webSearchField = z.boolean().optional().describe("Let the model search the web");
export const continuationField = z.string().uuid().optional().describe("Thread id from an earlier response");
export const filesField = z
  .array(z.string())
  .optional()
  .describe("Absolute paths of files or directories to include");
export const imagesField = z
  .array(z.string())
  .optional()
  .describe("Absolute image paths or data: URLs (vision models)");

/** Rough token estimate used only to pick a model before anything is read (`auto`). */
function estimateTokens(...texts: Array<string | undefined>): number {
  return Math.ceil(texts.reduce((sum, text) => sum + (text?.length ?? 0), 0) / 3.5);
}

/** Resolves the model a call will use (before admission, so its provider cap applies). */
export function pickModel(
  services: Services,
  name: string | undefined,
  ...texts: Array<string | undefined>
): ResolvedModel {
  return services.registry.resolve(name, estimateTokens(...texts));
}

/** The `resend_prompt` answer for oversized input (SPEC §4.4), or undefined when it fits. */
export function oversizedPrompt(
  field: string,
  text: string | undefined,
): Record<string, unknown> | undefined {
  if (text === undefined || text.length <= MAX_PROMPT_CHARS) return undefined;
  return {
    status: "resend_prompt",
    content: `${field} is ${text.length.toLocaleString("en-US")} characters, over the ${MAX_PROMPT_CHARS.toLocaleString("en-US")} limit. Save it to a file (e.g. prompt.txt) and pass its absolute path in "files" instead, with a short ${field}.`,
    field,
    length: text.length,
    limit: MAX_PROMPT_CHARS,
  };
}

/**
 * Loads the thread named by `continuation_id`.
 * @throws ExaiError INVALID_ARGUMENT when it is unknown or expired.
 */
export async function loadThread(
  services: Services,
  continuationId: string | undefined,
): Promise<Thread | undefined> {
  if (continuationId === undefined) return undefined;
  const thread = await services.store.getThread(continuationId);
  if (!thread) {
    throw invalidArgument(
      "continuation_id",
      `thread ${continuationId} is unknown or expired (threads live ${services.config.conversation.ttlMs / 3_600_000} h after their last turn); start a new conversation without continuation_id`,
    );
  }
  return thread;
}

interface PreparedContext {
  thread: Thread | undefined;
  /** Conversation history + embedded files, ready to put in the user message. */
  contextText: string;
  filesIncluded: string[];
  filesSkipped: Array<{ path: string; reason: string }>;
  historyTurns: number;
  omittedTurns: number;
}

/**
 * Builds the history and files part of a model request within the model's budget: history is
 * selected newest-first; files named now come first, then files referenced earlier in the thread
 * (newest reference first), each embedded once; whatever does not fit is listed as skipped.
 */
export async function prepareContext(
  context: ToolContext,
  model: ResolvedModel,
  options: { continuationId?: string; files?: readonly string[]; field?: string; promptText?: string },
): Promise<PreparedContext> {
  const { services } = context;
  const thread = await loadThread(services, options.continuationId);
  const budget = planBudget(model.model.contextWindow);
  // Secrets met while expanding directories are listed as not included, never silently dropped.
  const { files: current, skipped: expandSkipped } =
    options.files && options.files.length > 0
      ? await context.files.expandDetailed(options.files, options.field ?? "files", context.signal)
      : { files: [], skipped: [] };
  const conversation = thread
    ? buildConversationContext(thread, {
        historyTokenBudget: budget.history,
        counter: services.tokens,
        excludeFiles: current,
      })
    : undefined;
  const allFiles = [...current, ...(conversation?.files ?? [])];
  // A file referenced earlier may have been deleted since: skip it with a reason rather than fail.
  const readable: string[] = [];
  const skipped: Array<{ path: string; reason: string }> = [];
  for (const path of allFiles) {
    if (current.includes(path)) {
      readable.push(path);
      continue;
    }
    try {
      await context.files.expand([path], "continuation files", context.signal);
      readable.push(path);
    } catch (error) {
      skipped.push({ path, reason: ExaiError.is(error) ? error.message : String(error) });
    }
  }
  const embedded =
    readable.length > 0
      ? await context.files.embed(readable, {
          tokenBudget: budget.files,
          countTokens: (text) => services.tokens.count(text),
          signal: context.signal,
        })
      : { text: "", included: [], skipped: [], tokens: 0 };
  const parts: string[] = [];
  if (conversation && conversation.historyText) parts.push(conversation.historyText);
  if (embedded.text) parts.push(`=== FILES ===\n${embedded.text}`);
  const allSkipped = [...expandSkipped, ...skipped, ...embedded.skipped];
  if (allSkipped.length > 0) {
    parts.push(
      `=== FILES NOT INCLUDED ===\n${allSkipped.map((item) => `${item.path}: ${item.reason}`).join("\n")}`,
    );
  }
  return {
    thread,
    contextText: parts.join("\n\n"),
    filesIncluded: embedded.included,
    filesSkipped: allSkipped,
    historyTurns: conversation?.includedTurns ?? 0,
    omittedTurns: conversation?.omittedTurns ?? 0,
  };
}

/**
 * Builds image content parts (vision models): each image (path or data URL) is read through the
 * sandbox, at most `limits.imageBytes` (EXAI_MAX_IMAGE_MB), and must be a PNG, JPEG, GIF or WebP.
 * @throws ExaiError INVALID_ARGUMENT naming `images[i]` (too large, not an image, model without
 *   vision); FILE_ACCESS_DENIED from the sandbox.
 */
export async function imageParts(
  context: ToolContext,
  model: ResolvedModel,
  images: readonly string[] | undefined,
): Promise<ContentPart[]> {
  if (!images || images.length === 0) return [];
  if (!model.model.images) {
    throw invalidArgument(
      "images",
      `model ${model.model.id} does not accept images; pick a vision model (see listmodels: images=true)`,
    );
  }
  const parts: ContentPart[] = [];
  const maxBytes = context.services.config.limits.imageBytes;
  for (const [index, image] of images.entries()) {
    // Sandboxed, size-capped and checked to be a PNG, JPEG, GIF or WebP by its bytes.
    const checked = await readImage(context.files, image, `images[${index}]`, maxBytes, context.signal);
    parts.push({ type: "image_url", image_url: { url: checked.dataUrl } });
  }
  return parts;
}

/** A user message: text plus optional image parts. */
export function userMessage(text: string, images: ContentPart[]): ChatMessage {
  return images.length > 0
    ? { role: "user", content: [{ type: "text", text }, ...images] }
    : { role: "user", content: text };
}

/**
 * Appends turns to the thread (creating it when there is none) and returns its id.
 * @throws ExaiError INVALID_ARGUMENT when the thread is full (MAX_CONVERSATION_TURNS).
 */
export async function recordTurns(
  services: Services,
  thread: Thread | undefined,
  toolName: string,
  turns: NewTurn[],
): Promise<string> {
  const { ttlMs, maxTurns } = services.config.conversation;
  const target = thread ?? (await services.store.createThread({ toolName, ttlMs }));
  await services.store.addTurns(target.id, turns, { ttlMs, maxTurns });
  return target.id;
}

/** Default temperature for a model when the caller gives none. */
export function defaultTemperature(model: ResolvedModel, requested: number | undefined): number | undefined {
  if (!model.model.temperature) return undefined;
  return requested ?? model.model.temperature.default;
}

/** Token usage of a model call, as reported in tool results (snake_case like the providers). */
export function usageJson(result: ChatResult): Record<string, number> {
  return {
    prompt_tokens: result.usage.promptTokens,
    completion_tokens: result.usage.completionTokens,
    total_tokens: result.usage.totalTokens,
    reasoning_tokens: result.reasoningTokens,
  };
}
