/**
 * kimi_chat_with_tools — a Kimi chat with caller-declared tools (OpenAI function-calling shape),
 * passed through with `tool_choice`. With `use_websearch` the builtin `$web_search` is added and
 * the Kimi provider answers those rounds itself (echoing the call's arguments as the tool result,
 * per Moonshot's web-search guide), bounded by KIMI_MAX_SEARCH_ROUNDS and the deadline. Calls of
 * the caller's own tools come back as `tool_calls`, with the assistant message to append before
 * sending the tool results in a follow-up call.
 */
import { z } from "zod";
import { invalidArgument } from "../base/errors.js";
import type { ChatMessage } from "../providers/types.js";
import { defaultTemperature, oversizedPrompt, usageJson, webSearchField } from "./common.js";
import { defineTool } from "./framework.js";
import { kimiModelField } from "./kimi-multi-file-chat.js";
import { resolveProviderModel } from "./provider-support.js";

const TOOL = "kimi_chat_with_tools";

/** Messages are checked for their role only; Moonshot validates the rest (OpenAI shape). */
const messageSchema = z.looseObject({ role: z.enum(["system", "user", "assistant", "tool"]) });

const schema = z.object({
  prompt: z.string().min(1).optional().describe("User message (or give messages)"),
  messages: z.array(messageSchema).min(1).optional().describe("OpenAI-style messages incl. tool results"),
  tools: z
    .array(z.looseObject({ type: z.string() }))
    .optional()
    .describe("OpenAI-format tool declarations"),
  tool_choice: z.union([z.enum(["auto", "none", "required"]), z.looseObject({})]).optional(),
  use_websearch: webSearchField,
  model: kimiModelField,
});

type Args = z.infer<typeof schema>;

/** The characters of user-supplied text in a call, for the 60,000-character rule. */
function inputText(args: Args): { field: string; text: string | undefined } {
  if (args.prompt !== undefined) return { field: "prompt", text: args.prompt };
  const text = (args.messages ?? [])
    .map((message) => (typeof message.content === "string" ? message.content : ""))
    .join("\n");
  return { field: "messages", text };
}

function oversized(args: Args) {
  const { field, text } = inputText(args);
  return oversizedPrompt(field, text);
}

export const kimiChatWithToolsTool = defineTool({
  name: TOOL,
  kind: "simple",
  description:
    "Kimi chat with your function tools; returns the tool_calls to run. use_websearch adds Kimi's $web_search, answered server-side.",
  annotations: { title: "Kimi: chat with tools", openWorldHint: true },
  schema,
  selectModel: (args, services) =>
    oversized(args) ? undefined : resolveProviderModel(services, "kimi", args.model, TOOL),
  async run(args, context) {
    if ((args.prompt === undefined) === (args.messages === undefined)) {
      throw invalidArgument(
        "prompt",
        args.prompt === undefined
          ? "give either prompt or messages"
          : "give prompt or messages, not both (put the prompt in messages as a user message)",
      );
    }
    const tooLong = oversized(args);
    if (tooLong) return tooLong;
    const model = context.model ?? resolveProviderModel(context.services, "kimi", args.model, TOOL);
    const messages: ChatMessage[] =
      args.prompt !== undefined
        ? [{ role: "user", content: args.prompt }]
        : (args.messages as unknown as ChatMessage[]);
    context.progress(`calling ${model.model.id}`);
    const result = await context.callModel({
      model,
      messages,
      ...(args.tools ? { tools: args.tools } : {}),
      ...(args.tool_choice !== undefined ? { toolChoice: args.tool_choice } : {}),
      webSearch: args.use_websearch ?? false,
      temperature: defaultTemperature(model, undefined),
      // Thinking stays off: a tool loop with thinking on must send reasoning_content back
      // unchanged (Moonshot docs), and $web_search requires it off on kimi-k2.5 / k2.6.
      thinkingMode: "minimal",
    });
    const pending = result.toolCalls.length > 0;
    return {
      status: "success",
      content: result.content,
      finish_reason: result.finishReason,
      tool_calls: result.toolCalls,
      ...(pending
        ? {
            assistant_message: { role: "assistant", content: result.content, tool_calls: result.toolCalls },
            next_step:
              "Run each tool call, then call kimi_chat_with_tools again with messages = the previous messages + assistant_message + one {role:'tool', tool_call_id, content} per call.",
          }
        : {}),
      // `rounds` counts every request of the $web_search loop; all but the last one were searches.
      ...(result.rounds !== undefined ? { web_search_rounds: result.rounds - 1 } : {}),
      usage: usageJson(result),
      metadata: {
        model_used: result.model,
        provider_used: result.provider,
        attempts: result.attempts.length,
      },
    };
  },
});
