/**
 * The context cost of a tool profile: tokens of the `tools/list` result a client receives (SPEC
 * §4: the full profile must stay under 10,000 tokens; users of similar servers complain about
 * 30–40k). Counted with the same tokenizer as conversation budgets (cl100k; GLM / Kimi / Claude
 * tokenizers differ by ~10–20 %), over the compact JSON of `{tools: [...]}` exactly as the MCP
 * server builds it. Used by the profile tests and `npm run bench`.
 */
import type { ToolProfile } from "../config/load.js";
import { getTokenCounter, type TokenCounter } from "../memory/tokenizer.js";
// The one import from the transport layer: the size must be measured on the listing the MCP
// server really sends, not on a copy of its logic.
import { listTools } from "./framework.js";
import { selectTools } from "./index.js";

/** Documented ceiling for the full profile's tools/list, tokens (SPEC §4). */
export const TOOLS_LIST_TOKEN_LIMIT = 10_000;

interface ToolsListSize {
  profile: ToolProfile;
  /** Tools listed. */
  tools: number;
  /** Tokens of the whole `{tools}` JSON. */
  tokens: number;
  /** Characters of that JSON. */
  characters: number;
  /** Tokens of each tool's entry, by name. */
  perTool: Record<string, number>;
}

/**
 * Measures the `tools/list` result of a profile (no ENABLED_TOOLS / DISABLED_TOOLS adjustment).
 * `counter` defaults to the shared tokenizer.
 */
export function toolsListSize(
  profile: ToolProfile,
  counter: TokenCounter = getTokenCounter(),
): ToolsListSize {
  const listing = listTools(selectTools({ profile, enabled: [], disabled: [] }));
  const json = JSON.stringify({ tools: listing });
  const perTool: Record<string, number> = {};
  for (const tool of listing) perTool[tool.name] = counter.count(JSON.stringify(tool));
  return { profile, tools: listing.length, tokens: counter.count(json), characters: json.length, perTool };
}

/** Tokens of a profile's whole `tools/list` JSON. */
export function toolsListTokens(profile: ToolProfile, counter: TokenCounter = getTokenCounter()): number {
  return toolsListSize(profile, counter).tokens;
}
