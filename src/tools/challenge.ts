/**
 * challenge — no model: wraps a statement in instructions that make the calling agent examine it
 * critically instead of agreeing reflexively (the anchors' "challenge" tool).
 */
import { z } from "zod";
import { defineTool } from "./framework.js";

const schema = z.object({
  prompt: z.string().min(1).describe("The statement, claim or proposal to examine critically"),
});

export const challengeTool = defineTool({
  name: "challenge",
  kind: "utility",
  description:
    "Make the agent critically re-examine a claim or its own conclusion instead of agreeing by reflex. No model call.",
  annotations: { title: "Challenge a claim", readOnlyHint: true },
  schema,
  async run(args) {
    return {
      status: "challenge_accepted",
      original_statement: args.prompt,
      challenge_prompt: `CRITICAL REASSESSMENT — do not simply agree. Examine this statement carefully:\n\n"${args.prompt}"\n\nCheck it against the code and facts you have. Is it correct? What evidence supports or contradicts it? What are the edge cases, hidden assumptions and alternatives? If it is wrong or incomplete, say so plainly and explain why; if it holds, say what makes you confident.`,
      instructions:
        "Answer the challenge_prompt yourself with evidence; do not defer to the statement's author.",
    };
  },
});
