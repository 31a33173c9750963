/**
 * The second half of the variable table (SPEC §3): conversations and storage, the daemon,
 * admission, files and tools, and the limits. Concatenated into VARIABLES in
 * src/config/variables.ts.
 */
import { durations, integer, type VariableSpec } from "./variable-spec.js";

/** The conversation, daemon, admission, tool-listing and limit variables, in README order. */
export const DAEMON_VARIABLES = [
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
