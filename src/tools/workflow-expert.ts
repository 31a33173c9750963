/**
 * The workflow engine's one model call (SPEC §4.2): the expert prompt built from the consolidated
 * steps, the tool-specific extras and the line-numbered relevant files within the model's content
 * budget, and the parsing of the expert's reply.
 */
import type { ChatResult } from "../providers/types.js";
import type { ResolvedModel } from "../providers/registry.js";
import { defaultTemperature, imageParts, userMessage } from "./common.js";
import { planBudget } from "../memory/conversation.js";
import { type ToolContext } from "./framework.js";
import type { StepRecord, WorkflowBase, WorkflowSpec } from "./workflow-spec.js";

/** Parses an expert reply: JSON (bare or fenced) when the model sent it, else {raw_analysis}. */
export function parseExpertReply(content: string): Record<string, unknown> {
  const trimmed = content.trim();
  const candidates = [trimmed, /```(?:json)?\s*([\s\S]*?)```/i.exec(trimmed)?.[1]?.trim()];
  const braces = trimmed.indexOf("{");
  if (braces >= 0) candidates.push(trimmed.slice(braces, trimmed.lastIndexOf("}") + 1));
  for (const candidate of candidates) {
    if (!candidate) continue;
    try {
      const parsed: unknown = JSON.parse(candidate);
      if (parsed && typeof parsed === "object" && !Array.isArray(parsed))
        return parsed as Record<string, unknown>;
    } catch {
      // not JSON in this form; try the next candidate
    }
  }
  return { raw_analysis: content };
}

/**
 * Asks the expert once, inside EXPERT_ANALYSIS_TIMEOUT_SECS (clipped to what is left of the call).
 * @throws ExaiError from the model call (TIMEOUT, PROVIDER_ERROR…) or the file reader.
 */
export async function askExpert(
  spec: WorkflowSpec,
  steps: StepRecord[],
  summary: { relevant_files: string[]; issues_found: StepRecord["issues_found"] },
  args: WorkflowBase & Record<string, unknown>,
  context: ToolContext,
  model: ResolvedModel,
  preparedLines: string[],
): Promise<ChatResult> {
  const { services, config } = { services: context.services, config: context.services.config };
  const budget = planBudget(model.model.contextWindow);
  const lines: string[] = [
    `=== ${spec.name.toUpperCase()} REQUEST ===`,
    steps[0]?.step ?? args.step,
    "",
    "=== INVESTIGATION STEPS (by the calling agent) ===",
  ];
  for (const step of steps) {
    lines.push(
      `--- Step ${step.step_number}/${step.total_steps}${step.confidence ? ` (confidence: ${step.confidence})` : ""} ---`,
      step.step,
      `Findings: ${step.findings}`,
    );
    if (step.hypothesis) lines.push(`Hypothesis: ${step.hypothesis}`);
    if (step.relevant_context.length) lines.push(`Relevant context: ${step.relevant_context.join(", ")}`);
  }
  if (summary.issues_found.length > 0) {
    lines.push(
      "",
      "=== ISSUES FOUND SO FAR ===",
      ...summary.issues_found.map(
        (issue) =>
          `- [${issue.severity}] ${issue.description}${issue.location ? ` (${issue.location})` : ""}`,
      ),
    );
  }
  // Tool-specific fields are usually given once (step 1): the latest value of each holds.
  const extras = Object.assign({}, ...steps.map((step) => step.extras), args) as typeof args;
  lines.push(...(spec.describeExtras?.(extras) ?? []), ...preparedLines);
  // The steps themselves (up to 50,000 characters of findings each) share the content budget with
  // the files: count them first, and give the files what is left.
  const stepTokens = services.tokens.count(lines.join("\n"));
  const embedded =
    summary.relevant_files.length > 0
      ? await context.files.embed(summary.relevant_files, {
          tokenBudget: Math.max(
            0,
            budget.files + budget.history - Math.max(0, stepTokens - budget.content * 0.2),
          ),
          countTokens: (text) => services.tokens.count(text),
          signal: context.signal,
        })
      : { text: "", included: [], skipped: [], tokens: 0 };
  if (embedded.text) lines.push("", "=== RELEVANT FILES ===", embedded.text);
  if (embedded.skipped.length > 0)
    lines.push(
      "",
      "=== FILES NOT INCLUDED ===",
      ...embedded.skipped.map((item) => `${item.path}: ${item.reason}`),
    );
  lines.push(
    "",
    'Respond with a single JSON object (no prose around it). If you cannot answer without more files, respond {"status": "files_required_to_continue", "files_needed": [absolute paths], "mandatory_instructions": "..."}.',
  );
  const images = await imageParts(context, model, args.images);
  // Leave a little of the tool budget for recording the result after the expert call.
  const expertBudget = Math.min(config.timeouts.expertAnalysisMs, Math.max(0, context.remainingMs() - 250));
  return context.callModel({
    model,
    messages: [{ role: "system", content: spec.systemPrompt }, userMessage(lines.join("\n"), images)],
    temperature: defaultTemperature(model, args.temperature),
    thinkingMode: args.thinking_mode ?? "medium",
    webSearch: args.use_websearch ?? false,
    budgetMs: expertBudget,
    layer: "expert",
  });
}
