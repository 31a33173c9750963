/**
 * Loads the configuration once, at the boundary (SPEC §3): `.env` in the working directory first,
 * the real environment wins, one zod parse, then the hierarchy check. Code below this layer never
 * reads `process.env`; it receives a `Config`.
 */
import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { isAbsolute, join, resolve } from "node:path";
import { parse as parseDotenv } from "dotenv";
import { ExaiError } from "../errors.js";
import {
  buildTimeoutConfig,
  derivedExpertSeconds,
  validateHierarchy,
  type TimeoutConfig,
} from "./timeouts.js";
import { buildEnvironmentSchema, type RawEnvironment } from "./variables.js";

const MIB = 1024 * 1024;

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
  daemon: { host: string; port: number; token?: string; resultTtlMs: number };
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
}

export interface LoadConfigOptions {
  /** The environment (tests pass their own; the CLI passes process.env). */
  env: RawEnvironment;
  /** Where `.env` is looked for; default: env.PWD-independent process working directory given by the caller. */
  cwd: string;
  /** Read `<cwd>/.env` (default true). */
  dotenv?: boolean;
}

/**
 * Parses and validates the configuration.
 * @throws ExaiError CONFIG_INVALID with `details.problems: {variables, message}[]` naming every
 *   offending variable, its value and the rule.
 */
export function loadConfig(options: LoadConfigOptions): Config {
  const fileEnv = options.dotenv === false ? {} : readDotenv(options.cwd);
  const merged: RawEnvironment = { ...fileEnv, ...options.env };
  const parsed = buildEnvironmentSchema().safeParse(merged);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => ({
      variables: [String(issue.path[0] ?? "?")],
      message: issue.message,
    }));
    throw configInvalid(problems);
  }
  const v = parsed.data as Record<string, unknown>;
  const num = (name: string) => v[name] as number;
  const opt = (name: string) => v[name] as number | undefined;
  const str = (name: string) => v[name] as string | undefined;
  const list = (name: string) => (v[name] as string[] | undefined) ?? [];

  const timeouts = buildTimeoutConfig({
    simple: num("SIMPLE_TOOL_TIMEOUT_SECS"),
    workflow: num("WORKFLOW_TOOL_TIMEOUT_SECS"),
    expert: opt("EXPERT_ANALYSIS_TIMEOUT_SECS") ?? derivedExpertSeconds(num("WORKFLOW_TOOL_TIMEOUT_SECS")),
    daemon: opt("EXAI_WS_CALL_TIMEOUT"),
    shim: opt("EXAI_SHIM_RPC_TIMEOUT"),
    http: num("EX_HTTP_TIMEOUT_SECONDS"),
    connect: num("EX_CONNECT_TIMEOUT_SECS"),
    streamIdle: num("EX_STREAM_IDLE_TIMEOUT_SECS"),
    glm: num("GLM_TIMEOUT_SECS"),
    kimi: num("KIMI_TIMEOUT_SECS"),
    custom: num("CUSTOM_TIMEOUT_SECS"),
    kimiWebSearch: num("KIMI_WEB_SEARCH_TIMEOUT_SECS"),
    expertHeartbeat: num("EXPERT_HEARTBEAT_INTERVAL_SECS"),
    progressInterval: num("EXAI_WS_PROGRESS_INTERVAL_SECS"),
  });
  const problems = validateHierarchy(timeouts);

  const toolCaps = parseToolCaps(str("EXAI_WS_TOOL_MAX_INFLIGHT") ?? "");
  if (typeof toolCaps === "string")
    problems.push({ variables: ["EXAI_WS_TOOL_MAX_INFLIGHT"], message: toolCaps });

  const providers: Partial<Record<ProviderName, ProviderSettings>> = {};
  const pool = (prefix: string) => ({
    maxConnections: num(`${prefix}_MAX_CONNECTIONS`),
    maxKeepaliveConnections: num(`${prefix}_MAX_KEEPALIVE_CONNECTIONS`),
  });
  for (const prefix of ["GLM", "KIMI", "CUSTOM"]) {
    const settings = pool(prefix);
    if (settings.maxKeepaliveConnections > settings.maxConnections) {
      problems.push({
        variables: [`${prefix}_MAX_KEEPALIVE_CONNECTIONS`, `${prefix}_MAX_CONNECTIONS`],
        message: `${prefix}_MAX_KEEPALIVE_CONNECTIONS (${settings.maxKeepaliveConnections}) must be ≤ ${prefix}_MAX_CONNECTIONS (${settings.maxConnections})`,
      });
    }
  }
  const glmKey = str("GLM_API_KEY");
  if (glmKey) {
    providers.glm = {
      name: "glm",
      apiKey: glmKey,
      baseUrl: str("GLM_API_URL") as string,
      timeoutMs: timeouts.provider.glm,
      ...pool("GLM"),
      allowedModels: list("GLM_ALLOWED_MODELS"),
      models: [],
    };
  }
  const kimiKey = str("KIMI_API_KEY");
  if (kimiKey) {
    providers.kimi = {
      name: "kimi",
      apiKey: kimiKey,
      baseUrl: str("KIMI_API_URL") as string,
      timeoutMs: timeouts.provider.kimi,
      ...pool("KIMI"),
      allowedModels: list("KIMI_ALLOWED_MODELS"),
      models: [],
    };
  }
  const customUrl = str("CUSTOM_API_URL");
  if (customUrl) {
    const models = list("CUSTOM_MODEL_NAME");
    if (models.length === 0) {
      problems.push({
        variables: ["CUSTOM_MODEL_NAME", "CUSTOM_API_URL"],
        message: `CUSTOM_API_URL is set (${customUrl}) but CUSTOM_MODEL_NAME is empty: name the model(s) the endpoint serves, e.g. CUSTOM_MODEL_NAME=llama3.2`,
      });
    }
    providers.custom = {
      name: "custom",
      apiKey: str("CUSTOM_API_KEY") ?? "not-needed",
      baseUrl: customUrl,
      timeoutMs: timeouts.provider.custom,
      ...pool("CUSTOM"),
      allowedModels: [],
      models,
    };
  }

  const roots = list("EXAI_ALLOWED_ROOTS");
  for (const root of roots) {
    if (!isAbsolute(root)) {
      problems.push({
        variables: ["EXAI_ALLOWED_ROOTS"],
        message: `EXAI_ALLOWED_ROOTS entry ${JSON.stringify(root)} is not an absolute path`,
      });
    }
  }
  if (problems.length > 0) throw configInvalid(problems);

  const dataDirRaw = str("EXAI_DATA_DIR") as string;
  const dataDir = dataDirRaw.startsWith("~")
    ? join(homedir(), dataDirRaw.slice(1))
    : resolve(options.cwd, dataDirRaw);

  const token = str("EXAI_WS_TOKEN");
  return {
    providers,
    defaultModel: str("DEFAULT_MODEL") as string,
    fastModelDefault: str("FAST_MODEL_DEFAULT") as string,
    longModelDefault: str("LONG_MODEL_DEFAULT") as string,
    timeouts,
    retry: { maxRetries: num("PROVIDER_MAX_RETRIES"), baseDelayMs: 500, maxDelayMs: 8000 },
    expertAnalysisEnabled: v["EXPERT_ANALYSIS_ENABLED"] as boolean,
    conversation: {
      ttlMs: num("CONVERSATION_TIMEOUT_HOURS") * 3_600_000,
      maxTurns: num("MAX_CONVERSATION_TURNS"),
    },
    dataDir,
    ...(str("DATABASE_URL") ? { databaseUrl: str("DATABASE_URL") } : {}),
    ...(str("REDIS_URL") ? { redisUrl: str("REDIS_URL") } : {}),
    daemon: {
      host: str("EXAI_WS_HOST") as string,
      port: num("EXAI_WS_PORT"),
      ...(token ? { token } : {}),
      resultTtlMs: num("EXAI_WS_RESULT_TTL") * 1000,
    },
    admission: {
      global: num("EXAI_WS_GLOBAL_MAX_INFLIGHT"),
      provider: {
        glm: num("EXAI_WS_GLM_MAX_INFLIGHT"),
        kimi: num("EXAI_WS_KIMI_MAX_INFLIGHT"),
        custom: num("EXAI_WS_CUSTOM_MAX_INFLIGHT"),
      },
      session: num("EXAI_WS_SESSION_MAX_INFLIGHT"),
      tool: toolCaps as Record<string, number>,
      retries: 3,
    },
    coalesce: { disabledFor: list("EXAI_WS_DISABLE_COALESCE_FOR_TOOLS") },
    ...(roots.length > 0 ? { allowedRoots: roots.map((root) => resolve(root)) } : {}),
    tools: {
      profile: str("TOOL_PROFILE") as ToolProfile,
      enabled: list("ENABLED_TOOLS"),
      disabled: list("DISABLED_TOOLS"),
    },
    logLevel: str("EXAI_LOG_LEVEL") as string,
    limits: {
      imageBytes: num("EXAI_MAX_IMAGE_MB") * MIB,
      messageBytes: num("EXAI_MAX_MESSAGE_MB") * MIB,
      argumentDepth: num("EXAI_MAX_ARGUMENT_DEPTH"),
      ...(opt("EXAI_MAX_STREAM_CHARS") !== undefined ? { streamChars: opt("EXAI_MAX_STREAM_CHARS") } : {}),
      wsBacklogBytes: num("EXAI_WS_MAX_BACKLOG_MB") * MIB,
      resultCacheBytes: num("EXAI_WS_RESULT_CACHE_MB") * MIB,
      mcpSessions: num("EXAI_MCP_MAX_SESSIONS"),
    },
    cwd: options.cwd,
  };
}

function readDotenv(cwd: string): RawEnvironment {
  try {
    return parseDotenv(readFileSync(join(cwd, ".env")));
  } catch (error) {
    // A missing .env is the normal case; any other read error is worth reporting.
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return {};
    throw new ExaiError(
      "CONFIG_INVALID",
      `could not read ${join(cwd, ".env")}: ${(error as Error).message}`,
      {
        cause: error,
      },
    );
  }
}

function parseToolCaps(text: string): Record<string, number> | string {
  const caps: Record<string, number> = {};
  for (const entry of text
    .split(",")
    .map((item) => item.trim())
    .filter(Boolean)) {
    const match = /^([a-z_][a-z0-9_]*)\s*=\s*(\d+)$/i.exec(entry);
    if (!match || Number(match[2]) < 1) {
      return `EXAI_WS_TOOL_MAX_INFLIGHT entry ${JSON.stringify(entry)} is not tool=N with N ≥ 1 (e.g. analyze=3,codereview=3)`;
    }
    caps[match[1] as string] = Number(match[2]);
  }
  return caps;
}

function configInvalid(problems: Array<{ variables: string[]; message: string }>): ExaiError {
  const names = [...new Set(problems.flatMap((problem) => problem.variables))];
  const lines = problems.map((problem) => `  - ${problem.message}`).join("\n");
  return new ExaiError(
    "CONFIG_INVALID",
    `invalid configuration (${names.join(", ")}):\n${lines}\nFix the variable(s) in the environment or .env; see .env.example.`,
    { details: { problems, variables: names } },
  );
}
