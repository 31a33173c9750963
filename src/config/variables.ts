/**
 * Every environment variable exai reads (SPEC §3), as data: name, default, rule and meaning.
 * The zod schema, `.env.example` and the README's configuration table are all derived from this
 * list, so the documentation cannot drift from the code.
 */
import { z } from "zod";

export type VariableKind = "seconds" | "integer" | "string" | "url" | "boolean" | "list" | "secret" | "enum";

export interface VariableSpec {
  name: string;
  kind: VariableKind;
  /** Default as the user would write it in `.env`; undefined = unset. */
  default?: string;
  /** Shown in the README table instead of the default (e.g. "derived 1.5 × workflow"). */
  defaultLabel?: string;
  meaning: string;
  group: string;
  /** For `enum`. */
  values?: readonly string[];
  /** Inclusive lower bound for numbers. */
  min?: number;
  /** Exclusive lower bound for numbers (durations must be > 0). */
  greaterThan?: number;
  max?: number;
}

/** A duration in seconds (> 0, ≤ 1 day); `def` undefined = unset by default (derived or off). */
const durations = <
  const N extends string,
  const D extends string | undefined,
  const X extends Partial<VariableSpec> = Record<never, never>,
>(
  name: N,
  def: D,
  meaning: string,
  group: string,
  extra?: X,
) =>
  ({
    name,
    kind: "seconds",
    default: def,
    meaning,
    group,
    greaterThan: 0,
    max: 86_400,
    ...(extra as X),
  }) as const;
/** A whole number within [min, max]. */
const integer = <const N extends string, const D extends string | undefined>(
  name: N,
  def: D,
  meaning: string,
  group: string,
  min = 1,
  max = 100_000,
) => ({ name, kind: "integer", default: def, meaning, group, min, max }) as const;

/** The full list, in the order the README and `.env.example` show it. */
export const VARIABLES = [
  // Where the rest comes from (read from the real environment only)
  {
    name: "EXAI_ENV_FILE",
    kind: "string",
    defaultLabel: "`$XDG_CONFIG_HOME/exai/.env`, else `~/.config/exai/.env`",
    meaning:
      "the user-level configuration file (never the working directory's `.env`); must be owned by you and not writable by others; `off` = read none; only the real environment can set it",
    group: "configuration file",
  },
  // Providers
  { name: "GLM_API_KEY", kind: "secret", meaning: "enables GLM (Z.ai)", group: "providers" },
  {
    name: "GLM_API_URL",
    kind: "url",
    default: "https://api.z.ai/api/paas/v4",
    meaning: "GLM base URL (mainland China: https://open.bigmodel.cn/api/paas/v4)",
    group: "providers",
  },
  { name: "KIMI_API_KEY", kind: "secret", meaning: "enables Kimi (Moonshot)", group: "providers" },
  {
    name: "KIMI_API_URL",
    kind: "url",
    default: "https://api.moonshot.ai/v1",
    meaning: "Kimi base URL (China: https://api.moonshot.cn/v1)",
    group: "providers",
  },
  {
    name: "CUSTOM_API_URL",
    kind: "url",
    meaning:
      "any OpenAI-compatible endpoint (Ollama: http://localhost:11434/v1); enables the custom provider",
    group: "providers",
  },
  {
    name: "CUSTOM_API_KEY",
    kind: "secret",
    meaning: "API key of the custom endpoint (optional)",
    group: "providers",
  },
  {
    name: "CUSTOM_MODEL_NAME",
    kind: "list",
    meaning: "model names served by the custom endpoint (comma list)",
    group: "providers",
  },
  {
    name: "DEFAULT_MODEL",
    kind: "string",
    default: "auto",
    meaning: "model name, alias, or `auto`",
    group: "providers",
  },
  {
    name: "FAST_MODEL_DEFAULT",
    kind: "string",
    default: "glm-4.5-flash",
    meaning: "what `auto` picks for small requests",
    group: "providers",
  },
  {
    name: "LONG_MODEL_DEFAULT",
    kind: "string",
    default: "kimi-k2.6",
    meaning: "what `auto` picks when the payload needs a long context",
    group: "providers",
  },
  {
    name: "GLM_ALLOWED_MODELS",
    kind: "list",
    meaning: "allow-list of GLM models (comma list; empty = all)",
    group: "providers",
  },
  {
    name: "KIMI_ALLOWED_MODELS",
    kind: "list",
    meaning: "allow-list of Kimi models (comma list; empty = all)",
    group: "providers",
  },
  // Provider timeouts and retries
  durations(
    "GLM_TIMEOUT_SECS",
    "30",
    "one GLM attempt: time to response headers / first stream chunk",
    "provider timeouts",
  ),
  durations(
    "KIMI_TIMEOUT_SECS",
    "30",
    "one Kimi attempt: time to response headers / first stream chunk",
    "provider timeouts",
  ),
  durations(
    "CUSTOM_TIMEOUT_SECS",
    "30",
    "one custom-endpoint attempt: time to headers / first chunk",
    "provider timeouts",
  ),
  durations("KIMI_WEB_SEARCH_TIMEOUT_SECS", "30", "one attempt that uses web search", "provider timeouts"),
  durations(
    "EX_STREAM_IDLE_TIMEOUT_SECS",
    "15",
    "longest silence between two stream chunks",
    "provider timeouts",
  ),
  durations(
    "EX_HTTP_TIMEOUT_SECONDS",
    "30",
    "HTTP client ceiling per request; must be ≥ every provider timeout",
    "provider timeouts",
  ),
  durations("EX_CONNECT_TIMEOUT_SECS", "10", "TCP + TLS connect per attempt", "provider timeouts"),
  integer(
    "PROVIDER_MAX_RETRIES",
    "3",
    "retries after the first attempt, only while the deadline allows",
    "provider timeouts",
    0,
    10,
  ),
  integer("GLM_MAX_KEEPALIVE_CONNECTIONS", "10", "GLM idle sockets kept open", "connection pools"),
  integer("GLM_MAX_CONNECTIONS", "100", "GLM connection pool size", "connection pools"),
  integer("KIMI_MAX_KEEPALIVE_CONNECTIONS", "10", "Kimi idle sockets kept open", "connection pools"),
  integer("KIMI_MAX_CONNECTIONS", "100", "Kimi connection pool size", "connection pools"),
  integer(
    "CUSTOM_MAX_KEEPALIVE_CONNECTIONS",
    "10",
    "custom-endpoint idle sockets kept open",
    "connection pools",
  ),
  integer("CUSTOM_MAX_CONNECTIONS", "100", "custom-endpoint connection pool size", "connection pools"),
  // Tool timeouts
  durations("SIMPLE_TOOL_TIMEOUT_SECS", "30", "whole call of a simple tool (chat, …)", "tool timeouts"),
  durations(
    "WORKFLOW_TOOL_TIMEOUT_SECS",
    "45",
    "whole call of a workflow tool; the root of the derived values",
    "tool timeouts",
  ),
  durations(
    "EXPERT_ANALYSIS_TIMEOUT_SECS",
    undefined,
    "the expert-analysis model call inside a workflow tool (≤ workflow − min(5 s, 20 % of workflow))",
    "tool timeouts",
    { defaultLabel: "40 (at most workflow − 5 s)" },
  ),
  durations(
    "EXPERT_HEARTBEAT_INTERVAL_SECS",
    "5",
    "progress cadence during the expert call",
    "tool timeouts",
  ),
  durations("EXAI_WS_PROGRESS_INTERVAL_SECS", "5", "progress cadence of every call", "tool timeouts"),
  durations("EXAI_WS_CALL_TIMEOUT", undefined, "daemon ceiling per call", "tool timeouts", {
    defaultLabel: "derived 1.5 × workflow",
  }),
  durations("EXAI_SHIM_RPC_TIMEOUT", undefined, "shim ceiling per call", "tool timeouts", {
    defaultLabel: "derived 2.0 × workflow",
  }),
  {
    name: "EXPERT_ANALYSIS_ENABLED",
    kind: "boolean",
    default: "true",
    meaning: "final-step expert call of workflow tools",
    group: "tool timeouts",
  },
  // Conversations and storage
  durations(
    "CONVERSATION_TIMEOUT_HOURS",
    "3",
    "conversation thread lifetime after its last turn (hours)",
    "conversations",
  ),
  integer("MAX_CONVERSATION_TURNS", "20", "turns per conversation thread", "conversations", 2, 1000),
  {
    name: "EXAI_DATA_DIR",
    kind: "string",
    default: "~/.exai",
    meaning: "SQLite database, logs, tool-call log",
    group: "conversations",
  },
  {
    name: "DATABASE_URL",
    kind: "url",
    meaning: "Postgres store for several daemons (reserved; SQLite is used when unset)",
    group: "conversations",
  },
  {
    name: "REDIS_URL",
    kind: "url",
    meaning: "Redis coordination across daemons (reserved)",
    group: "conversations",
  },
  // Daemon
  {
    name: "EXAI_WS_HOST",
    kind: "string",
    default: "127.0.0.1",
    meaning: "daemon listen address",
    group: "daemon",
  },
  integer("EXAI_WS_PORT", "8765", "daemon port (WebSocket, /mcp, /health, /metrics)", "daemon", 0, 65535),
  {
    name: "EXAI_WS_TOKEN",
    kind: "secret",
    defaultLabel: "generated into `EXAI_DATA_DIR/daemon.token`",
    meaning:
      "token for the daemon's TCP endpoints (WebSocket hello token, `Authorization: Bearer` on /mcp, /metrics and /health details); unset = generated once (0600 file); `off` = no token (warned); the Unix socket needs none",
    group: "daemon",
  },
  durations(
    "EXAI_WS_RESULT_TTL",
    "600",
    "how long a finished result is kept for a re-sent request_id",
    "daemon",
  ),
  integer("EXAI_WS_GLOBAL_MAX_INFLIGHT", "16", "admission cap: calls in flight in total", "admission"),
  integer("EXAI_WS_GLM_MAX_INFLIGHT", "4", "admission cap: GLM calls in flight", "admission"),
  integer("EXAI_WS_KIMI_MAX_INFLIGHT", "6", "admission cap: Kimi calls in flight", "admission"),
  integer("EXAI_WS_CUSTOM_MAX_INFLIGHT", "4", "admission cap: custom-endpoint calls in flight", "admission"),
  integer(
    "EXAI_WS_SESSION_MAX_INFLIGHT",
    "8",
    "admission cap: calls in flight per client session",
    "admission",
  ),
  {
    name: "EXAI_WS_TOOL_MAX_INFLIGHT",
    kind: "string",
    default: "analyze=3,codereview=3,testgen=4",
    meaning: "admission caps per tool (tool=N, comma list)",
    group: "admission",
  },
  {
    name: "EXAI_WS_DISABLE_COALESCE_FOR_TOOLS",
    kind: "list",
    default: "kimi_chat_with_tools,analyze,codereview,testgen",
    meaning: "tools whose identical parallel calls run separately",
    group: "admission",
  },
  // Files and tools
  {
    name: "EXAI_ALLOWED_ROOTS",
    kind: "list",
    meaning:
      "directories tools may read (comma list); default: the client's roots, else the working directory",
    group: "files and tools",
  },
  {
    name: "TOOL_PROFILE",
    kind: "enum",
    default: "standard",
    values: ["lean", "standard", "full"],
    meaning: "which tools are listed: lean (11), standard (29), full (31)",
    group: "files and tools",
  },
  {
    name: "ENABLED_TOOLS",
    kind: "list",
    meaning: "tools added to the profile (comma list)",
    group: "files and tools",
  },
  {
    name: "DISABLED_TOOLS",
    kind: "list",
    meaning: "tools removed from the profile (version and listmodels always stay)",
    group: "files and tools",
  },
  {
    name: "EXAI_LOG_LEVEL",
    kind: "enum",
    default: "info",
    values: ["trace", "debug", "info", "warn", "error", "silent"],
    meaning: "log level (logs go to stderr and EXAI_DATA_DIR/logs, never stdout)",
    group: "files and tools",
  },
  // Limits: every input and buffer has a bound (sizes in MiB unless the name says otherwise).
  integer(
    "EXAI_MAX_IMAGE_MB",
    "20",
    "largest image accepted in `images` (PNG, JPEG, GIF or WebP), MiB",
    "limits",
    1,
    100,
  ),
  integer(
    "EXAI_MAX_MESSAGE_MB",
    "32",
    "largest MCP message on stdin and largest daemon WebSocket frame, MiB",
    "limits",
    1,
    256,
  ),
  integer(
    "EXAI_MAX_ARGUMENT_DEPTH",
    "32",
    "deepest nesting of arrays/objects in tool arguments",
    "limits",
    4,
    1000,
  ),
  {
    name: "EXAI_MAX_STREAM_CHARS",
    kind: "integer",
    defaultLabel: "derived: 8 × the model's max output tokens",
    meaning:
      "most characters (answer + reasoning + tool arguments) accepted from one streamed response, and bytes of a non-streamed body; more is PROVIDER_ERROR",
    group: "limits",
    min: 1000,
    max: 1_000_000_000,
  },
  integer(
    "EXAI_WS_MAX_BACKLOG_MB",
    "16",
    "unread bytes a WebSocket client may leave queued before the daemon disconnects it (close 4008)",
    "limits",
    1,
    1024,
  ),
  integer(
    "EXAI_WS_RESULT_CACHE_MB",
    "64",
    "bytes of results kept for request_id re-sends, MiB",
    "limits",
    1,
    4096,
  ),
  integer(
    "EXAI_MCP_MAX_SESSIONS",
    "64",
    "open /mcp sessions; the least recently used is closed beyond it",
    "limits",
    1,
    100_000,
  ),
] as const satisfies readonly VariableSpec[];

/** The table seen as plain specs (documentation, the schema's runtime shape). */
export const VARIABLE_SPECS: readonly VariableSpec[] = VARIABLES;

/** One entry of the table, with its literal name, kind and default. */
type Variable = (typeof VARIABLES)[number];
/** Every variable name exai reads. */
export type VariableName = Variable["name"];

/** The parsed type of a variable: numbers for durations and integers, enums as their values. */
type ValueOf<S extends Variable> = S["kind"] extends "seconds" | "integer"
  ? number
  : S["kind"] extends "boolean"
    ? boolean
    : S["kind"] extends "list"
      ? string[]
      : S extends { values: readonly (infer V)[] }
        ? V
        : string;

/**
 * The parsed environment: one property per variable of VARIABLES, typed by its kind, and
 * `undefined` only for variables without a default. A misspelt name is a compile error.
 */
export type ParsedEnvironment = {
  [S in Variable as S["name"]]: S extends { default: string } ? ValueOf<S> : ValueOf<S> | undefined;
};

export type RawEnvironment = Record<string, string | undefined>;

/** Parses a duration in seconds: fractions allowed, must be finite and within the variable's bounds. */
function numberSchema(spec: VariableSpec, integerOnly: boolean) {
  return z.string().transform((text, ctx) => {
    const trimmed = text.trim();
    const value = Number(trimmed);
    const rule = describeRule(spec);
    if (trimmed === "" || !Number.isFinite(value) || (integerOnly && !Number.isInteger(value))) {
      ctx.addIssue({ code: "custom", message: `${spec.name}=${JSON.stringify(text)} is not ${rule}` });
      return z.NEVER;
    }
    if (
      (spec.greaterThan !== undefined && !(value > spec.greaterThan)) ||
      (spec.min !== undefined && value < spec.min) ||
      (spec.max !== undefined && value > spec.max)
    ) {
      ctx.addIssue({
        code: "custom",
        message: `${spec.name}=${trimmed} is out of range: it must be ${rule}`,
      });
      return z.NEVER;
    }
    return value;
  });
}

/** A short English statement of a variable's rule, used in error messages and the README. */
export function describeRule(spec: VariableSpec): string {
  switch (spec.kind) {
    case "seconds": {
      const unit = spec.name.endsWith("_HOURS") ? "hours" : "seconds";
      return `a number of ${unit} > ${spec.greaterThan ?? 0}${spec.max !== undefined ? ` and ≤ ${spec.max}` : ""} (fractions allowed)`;
    }
    case "integer":
      return `a whole number from ${spec.min ?? 0} to ${spec.max ?? "∞"}`;
    case "boolean":
      return "true or false (also 1/0, yes/no, on/off)";
    case "enum":
      return `one of ${(spec.values ?? []).join(", ")}`;
    case "url":
      return "an http(s) URL";
    case "list":
      return "a comma-separated list";
    default:
      return "a string";
  }
}

function valueSchema(spec: VariableSpec): z.ZodType<unknown> {
  switch (spec.kind) {
    case "seconds":
      return numberSchema(spec, false);
    case "integer":
      return numberSchema(spec, true);
    case "boolean":
      return z.string().transform((text, ctx) => {
        const normalised = text.trim().toLowerCase();
        if (["true", "1", "yes", "on"].includes(normalised)) return true;
        if (["false", "0", "no", "off"].includes(normalised)) return false;
        ctx.addIssue({
          code: "custom",
          message: `${spec.name}=${JSON.stringify(text)} is not ${describeRule(spec)}`,
        });
        return z.NEVER;
      });
    case "enum":
      return z.string().transform((text, ctx) => {
        const normalised = text.trim().toLowerCase();
        if ((spec.values ?? []).includes(normalised)) return normalised;
        ctx.addIssue({
          code: "custom",
          message: `${spec.name}=${JSON.stringify(text)} is not ${describeRule(spec)}`,
        });
        return z.NEVER;
      });
    case "url":
      return z.string().transform((text, ctx) => {
        const trimmed = text.trim().replace(/\/+$/, "");
        try {
          const url = new URL(trimmed);
          const postgres = spec.name === "DATABASE_URL" && /^postgres(ql)?:$/.test(url.protocol);
          const redis = spec.name === "REDIS_URL" && /^rediss?:$/.test(url.protocol);
          if (url.protocol === "http:" || url.protocol === "https:" || postgres || redis) return trimmed;
        } catch {
          // fall through to the issue below: an unparsable URL is reported like a wrong scheme
        }
        ctx.addIssue({
          code: "custom",
          message: `${spec.name}=${JSON.stringify(text)} is not ${describeRule(spec)}`,
        });
        return z.NEVER;
      });
    case "list":
      return z.string().transform((text) =>
        text
          .split(",")
          .map((item) => item.trim())
          .filter((item) => item.length > 0),
      );
    default:
      return z.string().transform((text) => text.trim());
  }
}

/**
 * The zod schema over the raw environment. Empty strings count as unset (so `FOO=` in `.env`
 * falls back to the default). Output: variable name → parsed value (number, boolean, string,
 * string[]) or undefined.
 */
export function buildEnvironmentSchema(): z.ZodType<ParsedEnvironment, RawEnvironment> {
  const shape: Record<string, z.ZodType<unknown>> = {};
  for (const spec of VARIABLE_SPECS) {
    const inner = valueSchema(spec);
    shape[spec.name] = z.preprocess(
      (value) => (typeof value === "string" && value.trim() === "" ? undefined : value),
      // prefault: the default goes through the same parser as a user value (zod 4 `.default` would skip it).
      spec.default === undefined ? inner.optional() : inner.prefault(spec.default as never),
    );
  }
  // The one cast: the shape is built from the same table `ParsedEnvironment` is derived from, each
  // value by the parser of its kind (numberSchema → number, list → string[], enum → its values…).
  return z.object(shape) as unknown as z.ZodType<ParsedEnvironment, RawEnvironment>;
}

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
