/**
 * Request building: the chat-completions body (shared fields, the dialect's own, caller extras),
 * the thinking switch, the stream cap, per-attempt headers and the bodies of other endpoints.
 */
import type { FormData as UndiciFormData } from "undici";
import type { ModelInfo } from "./registry.js";
import type {
  ChatRequest,
  Dialect,
  JsonRequestInit,
  ProviderCallContext,
  ProviderLimits,
  ThinkingMode,
} from "./types.js";

/** The derived stream cap: characters per max-output token (≈ 4 per token, with a 2× margin). */
export const STREAM_CHARS_PER_TOKEN = 8;

/** The cap on one streamed chat response, characters, and how it was set (for messages). */
export function streamCapFor(
  model: ModelInfo,
  limits: ProviderLimits | undefined,
): { chars: number; how: string } {
  if (limits?.streamChars !== undefined) return { chars: limits.streamChars, how: "EXAI_MAX_STREAM_CHARS" };
  return {
    chars: STREAM_CHARS_PER_TOKEN * model.maxOutput,
    how: `${STREAM_CHARS_PER_TOKEN} × the model's max output of ${model.maxOutput.toLocaleString("en-US")} tokens`,
  };
}

/**
 * Maps exai's thinking modes to the provider switch (SPEC §5): minimal → off; low/medium/high →
 * `reasoning_effort` where the model supports it (else thinking on); max → high.
 */
export function thinkingFields(model: ModelInfo, mode: ThinkingMode | undefined): Record<string, unknown> {
  if (model.thinking === "none" || mode === undefined) return {};
  if (mode === "minimal") return { thinking: { type: "disabled" } };
  const effort = mode === "max" ? "high" : mode;
  if (model.thinking === "effort") return { thinking: { type: "enabled" }, reasoning_effort: effort };
  return { thinking: { type: "enabled" } };
}

/** The streamed chat-completions body of `request` in `dialect` (what `chat` sends and `previewBody` shows). */
export function buildChatBody(dialect: Dialect, request: ChatRequest): Record<string, unknown> {
  const body: Record<string, unknown> = {
    model: request.model.id,
    messages: request.messages,
    stream: true,
  };
  if (request.model.temperature && request.temperature !== undefined) {
    const { min, max } = request.model.temperature;
    body.temperature = Math.min(max, Math.max(min, request.temperature));
  }
  if (request.maxTokens !== undefined) body.max_tokens = Math.min(request.maxTokens, request.model.maxOutput);
  if (request.tools && request.tools.length > 0) body.tools = [...request.tools];
  if (request.toolChoice !== undefined) body.tool_choice = request.toolChoice;
  dialect.shapeBody(request, body);
  Object.assign(body, request.extraBody ?? {});
  return body;
}

/**
 * Headers of every attempt. `idempotencyKey` is made once per logical request (one chat
 * completion, one upload…) and reused only by that request's retries: a provider that honours it
 * must never answer a different request with a cached response.
 */
export function attemptHeaders(
  dialect: Dialect,
  context: ProviderCallContext,
  idempotencyKey: string,
): Record<string, string> {
  return {
    "X-Request-Id": context.traceId,
    ...(dialect.headers?.(context, idempotencyKey) ?? {}),
  };
}

/**
 * The body of a non-chat request: JSON (and its Content-Type, added to `headers`) or multipart form
 * data; undefined for a body-less GET / DELETE.
 */
export function endpointBody(
  init: JsonRequestInit,
  headers: Record<string, string>,
  FormData: typeof UndiciFormData,
): string | UndiciFormData | undefined {
  if (init.json !== undefined) {
    headers["Content-Type"] = "application/json";
    return JSON.stringify(init.json);
  }
  if (!init.form) return undefined;
  const form = new FormData();
  for (const [key, value] of Object.entries(init.form.fields)) form.append(key, value);
  if (init.form.file) {
    const { name, content, type } = init.form.file;
    form.append("file", new Blob([content], { type: type ?? "application/octet-stream" }), name);
  }
  return form;
}
