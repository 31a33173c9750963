/**
 * Stream reading: every chunk of a chat-completions event stream is parsed with a zod schema
 * (content and reasoning deltas, tool-call fragments, finish_reason, usage, GLM's web_search
 * results), accumulated, and bounded by the stream cap (EXAI_MAX_STREAM_CHARS).
 */
import { z } from "zod";
import type { ProviderName } from "../config/load.js";
import { ExaiError } from "../base/errors.js";
import { now } from "../timing/deadline.js";
import type { AttemptTimers } from "./attempt-timers.js";
import type { TokenUsage, ToolCall } from "./types.js";

const usageSchema = z
  .looseObject({
    prompt_tokens: z.number().nullish(),
    completion_tokens: z.number().nullish(),
    total_tokens: z.number().nullish(),
  })
  .nullish();

const toolCallDeltaSchema = z.looseObject({
  index: z.number().int().min(0).nullish(),
  id: z.string().nullish(),
  type: z.string().nullish(),
  function: z.looseObject({ name: z.string().nullish(), arguments: z.string().nullish() }).nullish(),
});

/** One `data:` event of a chat-completions stream, as far as exai reads it. */
const streamChunkSchema = z.looseObject({
  id: z.string().nullish(),
  request_id: z.string().nullish(),
  web_search: z.array(z.unknown()).nullish(),
  usage: usageSchema,
  choices: z
    .array(
      z.looseObject({
        delta: z
          .looseObject({
            content: z.string().nullish(),
            reasoning_content: z.string().nullish(),
            tool_calls: z.array(toolCallDeltaSchema).nullish(),
          })
          .nullish(),
        finish_reason: z.string().nullish(),
        usage: usageSchema,
      }),
    )
    .nullish(),
});

type StreamChunk = z.infer<typeof streamChunkSchema>;

/** What a stream carried, accumulated chunk by chunk. */
export interface StreamState {
  content: string;
  /** Reasoning deltas received (≈ tokens). */
  reasoningTokens: number;
  /** Characters received: answer + reasoning + tool-call names and arguments. */
  received: number;
  finishReason: string;
  requestId: string | undefined;
  usage: TokenUsage;
  webSearch: unknown[] | undefined;
  /** Sparse while fragments arrive (indexed by the provider's `index`). */
  toolCalls: ToolCall[];
}

interface StreamReadOptions {
  /** "GLM glm-4.5": the start of messages. */
  label: string;
  provider: ProviderName;
  model: string;
  timers: AttemptTimers;
  cap: { chars: number; how: string };
  onProgress?: ((message: string) => void) | undefined;
}

/** The state of a stream before its first chunk. */
export function emptyStreamState(): StreamState {
  return {
    content: "",
    reasoningTokens: 0,
    received: 0,
    finishReason: "",
    requestId: undefined,
    usage: { promptTokens: 0, completionTokens: 0, totalTokens: 0 },
    webSearch: undefined,
    toolCalls: [],
  };
}

/**
 * Parses one raw chunk into `state`.
 * @throws ExaiError PROVIDER_ERROR (retryable) naming the field when the chunk has the wrong shape.
 */
export function applyChunk(
  state: StreamState,
  raw: unknown,
  options: Pick<StreamReadOptions, "label" | "provider">,
): void {
  const parsed = streamChunkSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue?.path.map(String).join(".") || "chunk";
    throw new ExaiError(
      "PROVIDER_ERROR",
      `${options.label}: a stream chunk has the wrong shape at ${where} (${issue?.message ?? "invalid"}); the provider sent malformed data`,
      { retryable: true, details: { provider: options.provider } },
    );
  }
  accumulate(state, parsed.data);
}

function accumulate(state: StreamState, chunk: StreamChunk): void {
  state.requestId ??= chunk.request_id ?? chunk.id ?? undefined;
  if (chunk.web_search) state.webSearch = chunk.web_search;
  const choice = chunk.choices?.[0];
  const delta = choice?.delta;
  if (delta?.reasoning_content) {
    state.reasoningTokens++;
    state.received += delta.reasoning_content.length;
  }
  if (typeof delta?.content === "string") {
    state.content += delta.content;
    state.received += delta.content.length;
  }
  for (const call of delta?.tool_calls ?? []) {
    const index = call.index ?? state.toolCalls.length;
    const existing = (state.toolCalls[index] ??= {
      id: "",
      type: call.type ?? "function",
      function: { name: "", arguments: "" },
    });
    if (call.id) existing.id = call.id;
    if (call.type) existing.type = call.type;
    if (call.function?.name) existing.function.name += call.function.name;
    if (call.function?.arguments) {
      existing.function.arguments += call.function.arguments;
      state.received += call.function.arguments.length;
    }
    state.received += call.function?.name?.length ?? 0;
  }
  if (choice?.finish_reason) state.finishReason = choice.finish_reason;
  const usage = chunk.usage ?? choice?.usage;
  if (usage) {
    const prompt = usage.prompt_tokens ?? 0;
    const completion = usage.completion_tokens ?? 0;
    state.usage = {
      promptTokens: prompt,
      completionTokens: completion,
      totalTokens: usage.total_tokens ?? prompt + completion,
    };
  }
}

/**
 * Reads a chat stream to its end: every chunk re-arms the idle timer, is parsed and counted
 * against the cap, and reports progress at most every 250 ms.
 * @throws ExaiError PROVIDER_ERROR past the cap (not retryable: the same request would stream
 *   without end again) or on a malformed chunk (retryable); whatever the stream itself throws.
 */
export async function readChatStream(
  stream: AsyncIterable<unknown>,
  options: StreamReadOptions,
): Promise<StreamState> {
  const { timers, cap } = options;
  const state = emptyStreamState();
  let lastProgress = 0;
  for await (const raw of stream) {
    timers.activity();
    applyChunk(state, raw, options);
    if (state.received > cap.chars) {
      throw timers.stop(
        new ExaiError(
          "PROVIDER_ERROR",
          `${options.label}: the streamed response passed the cap of ${cap.chars.toLocaleString("en-US")} characters (answer + reasoning; ${cap.how}) and was aborted; raise EXAI_MAX_STREAM_CHARS if this model legitimately answers at this length`,
          {
            retryable: false,
            details: {
              provider: options.provider,
              model: options.model,
              cap_chars: cap.chars,
              variable: "EXAI_MAX_STREAM_CHARS",
            },
          },
        ),
      );
    }
    const t = now();
    if (options.onProgress && t - lastProgress > 250) {
      lastProgress = t;
      options.onProgress(
        state.reasoningTokens > 0 && state.content === ""
          ? `${options.label}: reasoning, ${state.reasoningTokens.toLocaleString("en-US")} tokens`
          : `${options.label}: streaming, ${state.content.length.toLocaleString("en-US")} chars`,
      );
    }
  }
  return state;
}
