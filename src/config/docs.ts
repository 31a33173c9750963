/**
 * The README configuration table and `.env.example`, rendered from the variable table
 * (src/config/variables.ts); `scripts/update-docs.mjs` writes them, a test keeps them in sync.
 */
import { describeRule } from "./schema.js";
import { VARIABLE_SPECS } from "./variables.js";

/** The README configuration table (markdown), generated from VARIABLES. */
export function renderConfigTable(): string {
  const rows = ["| variable | default | rule | meaning |", "|---|---|---|---|"];
  for (const spec of VARIABLE_SPECS) {
    const def = spec.defaultLabel ?? (spec.default === undefined ? "—" : `\`${spec.default}\``);
    rows.push(`| \`${spec.name}\` | ${def} | ${describeRule(spec)} | ${spec.meaning} |`);
  }
  return rows.join("\n");
}

/** The `.env.example` file, generated from VARIABLES. */
export function renderEnvExample(): string {
  const lines = [
    "# exai-mcp configuration. Copy to ~/.config/exai/.env (chmod 600), or run `exai init`, and fill in at least one provider.",
    "# A .env in a project directory is never read: the server runs in whatever project your client opened.",
    "# Every variable is optional; the commented value is the default. Durations are seconds (fractions allowed).",
    "# Generated from src/config/variables.ts (a test keeps this file in sync).",
  ];
  let group = "";
  for (const spec of VARIABLE_SPECS) {
    if (spec.group !== group) {
      group = spec.group;
      lines.push("", `# --- ${group} ---`);
    }
    lines.push(`# ${spec.meaning}${spec.defaultLabel ? ` (default: ${spec.defaultLabel})` : ""}`);
    lines.push(`# ${spec.name}=${spec.default ?? ""}`);
  }
  return lines.join("\n") + "\n";
}
