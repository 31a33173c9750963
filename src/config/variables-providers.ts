/**
 * The first half of the variable table (SPEC §3): the configuration file, the providers, their
 * timeouts, retries and connection pools, and the tool timeouts. Concatenated into VARIABLES in
 * src/config/variables.ts.
 */
import { durations, integer, type VariableSpec } from "./variable-spec.js";

/** The configuration-file, provider, timeout and connection-pool variables, in README order. */
export const PROVIDER_VARIABLES = [
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
] as const satisfies readonly VariableSpec[];
