/**
 * The parsed configuration (SPEC §3) that `loadConfig` returns and the rest of src receives, and
 * the options of `loadConfig`.
 */
import type { TimeoutConfig } from "./timeouts.js";
import type { RawEnvironment } from "./variables.js";

export type ProviderName = "glm" | "kimi" | "custom";
export const PROVIDER_NAMES: readonly ProviderName[] = ["glm", "kimi", "custom"];

export interface ProviderSettings {
  name: ProviderName;
  apiKey: string;
  baseUrl: string;
  /** Per-attempt timeout to headers / first chunk, ms. */
  timeoutMs: number;
  maxConnections: number;
  maxKeepaliveConnections: number;
  /** Allow-list (empty = all catalogue models of this provider). */
  allowedModels: string[];
  /** Custom provider only: the model names it serves. */
  models: string[];
}

export type ToolProfile = "lean" | "standard" | "full";

export interface Config {
  providers: Partial<Record<ProviderName, ProviderSettings>>;
  defaultModel: string;
  fastModelDefault: string;
  longModelDefault: string;
  timeouts: TimeoutConfig;
  retry: { maxRetries: number; baseDelayMs: number; maxDelayMs: number };
  expertAnalysisEnabled: boolean;
  conversation: { ttlMs: number; maxTurns: number };
  dataDir: string;
  databaseUrl?: string;
  redisUrl?: string;
  daemon: {
    host: string;
    port: number;
    /** The TCP token when EXAI_WS_TOKEN sets one (not "off"). */
    token?: string;
    /** "set": EXAI_WS_TOKEN; "generate": unset, the daemon generates/reuses EXAI_DATA_DIR/daemon.token; "off": no TCP auth. */
    tokenMode: "set" | "generate" | "off";
    resultTtlMs: number;
  };
  admission: {
    global: number;
    provider: Record<ProviderName, number>;
    session: number;
    tool: Record<string, number>;
    /** OVER_CAPACITY retries done by the shim / in-process server inside the deadline. */
    retries: number;
  };
  coalesce: { disabledFor: string[] };
  allowedRoots?: string[];
  tools: { profile: ToolProfile; enabled: string[]; disabled: string[] };
  logLevel: string;
  /** Size and depth bounds on every input and buffer (SPEC §3, group "limits"). */
  limits: {
    /** Largest accepted image, bytes. */
    imageBytes: number;
    /** Largest MCP stdin message / daemon WebSocket frame, bytes. */
    messageBytes: number;
    /** Deepest nesting of arrays/objects in tool arguments. */
    argumentDepth: number;
    /** Explicit cap on characters of one streamed response; undefined = derived from the model's max output. */
    streamChars?: number;
    /** Unread bytes queued to one WebSocket client before it is disconnected. */
    wsBacklogBytes: number;
    /** Bytes of cached results kept for request_id re-sends. */
    resultCacheBytes: number;
    /** Open /mcp sessions (least recently used evicted beyond it). */
    mcpSessions: number;
  };
  cwd: string;
  /** Where the configuration came from (printed by `exai config`). */
  source: ConfigSource;
}

export interface ConfigSource {
  /** The user-level file that was read; undefined when none exists. */
  file?: string;
  /** Where the user-level file was looked for (absolute path). */
  searched: string;
  /** sha256 hex of the file's content, when one was read. */
  fileSha256?: string;
  /** A `.env` in the working directory that sets exai variables and was therefore ignored. */
  ignoredProjectEnv?: string;
}

export interface LoadConfigOptions {
  /** The real environment (tests pass their own; the CLI passes process.env). It wins over the file. */
  env: RawEnvironment;
  /** The working directory: base of relative paths; its `.env` is never read as configuration. */
  cwd: string;
  /** Read the user-level file (default true; tests pass false to read none). */
  envFile?: boolean;
}
