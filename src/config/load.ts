/**
 * Loads the configuration once, at the boundary (SPEC §3): the real environment, then one
 * user-level file (`EXAI_ENV_FILE`, else `$XDG_CONFIG_HOME/exai/.env`, else `~/.config/exai/.env`);
 * the real environment wins. Never the working directory's `.env`: MCP clients start the server in
 * whatever project the user opened, and that project must not redirect keys or widen roots. One zod
 * parse, then the hierarchy check. Code below this layer never reads `process.env`; it receives a
 * `Config`.
 */
import { createHash } from "node:crypto";
import { isAbsolute, join, resolve } from "node:path";
import { ExaiError } from "../base/errors.js";
import {
  buildTimeoutConfig,
  derivedExpertSeconds,
  validateHierarchy,
  type HierarchyProblem,
  type TimeoutConfig,
} from "./timeouts.js";
import { buildEnvironmentSchema } from "./schema.js";
import type { Config, ConfigSource, LoadConfigOptions, ProviderName, ProviderSettings } from "./types.js";
import { homeOf, readSources } from "./user-file.js";
import type { ParsedEnvironment, RawEnvironment } from "./variables.js";

export { PROVIDER_NAMES } from "./types.js";
export type {
  Config,
  ConfigSource,
  LoadConfigOptions,
  ProviderName,
  ProviderSettings,
  ToolProfile,
} from "./types.js";
export { MAX_ENV_FILE_BYTES, userConfigPath } from "./user-file.js";

const MIB = 1024 * 1024;

const PROVIDER_VARIABLE = /^(GLM|KIMI|CUSTOM)_(API_KEY|API_URL|MODEL_NAME|ALLOWED_MODELS)$/;

/**
 * Variable name → the first 16 hex digits of the sha256 of its value, for the provider variables
 * (GLM_*, KIMI_*, CUSTOM_* API keys, URLs and models) set to a non-empty value in `env` itself
 * (the file is not read). Lets two processes compare provider settings without exchanging keys.
 */
export function providerFingerprint(env: RawEnvironment): Record<string, string> {
  const fingerprint: Record<string, string> = {};
  for (const name of Object.keys(env).sort()) {
    const value = env[name]?.trim();
    if (!PROVIDER_VARIABLE.test(name) || !value) continue;
    fingerprint[name] = createHash("sha256").update(value).digest("hex").slice(0, 16);
  }
  return fingerprint;
}

/**
 * Parses and validates the configuration.
 * @throws ExaiError CONFIG_INVALID with `details.problems: {variables, message}[]` naming every
 *   offending variable, its value and the rule.
 */
export function loadConfig(options: LoadConfigOptions): Config {
  const source = readSources(options);
  const v = parseEnvironment(mergeEnvironment(source.fileEnv, options.env), source.source);

  const timeouts = buildTimeouts(v);
  const problems = validateHierarchy(timeouts);

  const toolCaps = parseToolCaps(v.EXAI_WS_TOOL_MAX_INFLIGHT);
  if (typeof toolCaps === "string")
    problems.push({ variables: ["EXAI_WS_TOOL_MAX_INFLIGHT"], message: toolCaps });

  const providers = buildProviders(v, timeouts, problems);

  const roots = v.EXAI_ALLOWED_ROOTS ?? [];
  checkRoots(roots, problems);
  if (problems.length > 0) throw configInvalid(problems, source.source);

  return {
    providers,
    defaultModel: v.DEFAULT_MODEL,
    fastModelDefault: v.FAST_MODEL_DEFAULT,
    longModelDefault: v.LONG_MODEL_DEFAULT,
    timeouts,
    retry: { maxRetries: v.PROVIDER_MAX_RETRIES, baseDelayMs: 500, maxDelayMs: 8000 },
    expertAnalysisEnabled: v.EXPERT_ANALYSIS_ENABLED,
    conversation: {
      ttlMs: v.CONVERSATION_TIMEOUT_HOURS * 3_600_000,
      maxTurns: v.MAX_CONVERSATION_TURNS,
    },
    dataDir: resolveDataDir(v.EXAI_DATA_DIR, options),
    ...(v.DATABASE_URL ? { databaseUrl: v.DATABASE_URL } : {}),
    ...(v.REDIS_URL ? { redisUrl: v.REDIS_URL } : {}),
    daemon: daemonSettings(v),
    admission: admissionSettings(v, typeof toolCaps === "string" ? {} : toolCaps),
    coalesce: { disabledFor: v.EXAI_WS_DISABLE_COALESCE_FOR_TOOLS ?? [] },
    ...(roots.length > 0 ? { allowedRoots: roots.map((root) => resolve(root)) } : {}),
    tools: {
      profile: v.TOOL_PROFILE,
      enabled: v.ENABLED_TOOLS ?? [],
      disabled: v.DISABLED_TOOLS ?? [],
    },
    logLevel: v.EXAI_LOG_LEVEL,
    limits: limitSettings(v),
    cwd: options.cwd,
    source: source.source,
  };
}

/** The file's variables overlaid by the real environment, except where it sets one to the empty string (= unset). */
function mergeEnvironment(fileEnv: RawEnvironment, env: RawEnvironment): RawEnvironment {
  const merged: RawEnvironment = { ...fileEnv };
  for (const [name, value] of Object.entries(env)) {
    if (value !== undefined && (value.trim() !== "" || !(name in merged))) merged[name] = value;
  }
  return merged;
}

/**
 * The one zod parse of the merged environment.
 * @throws ExaiError CONFIG_INVALID naming every variable the schema rejects.
 */
function parseEnvironment(merged: RawEnvironment, source: ConfigSource): ParsedEnvironment {
  const parsed = buildEnvironmentSchema().safeParse(merged);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => ({
      variables: [String(issue.path[0] ?? "?")],
      message: issue.message,
    }));
    throw configInvalid(problems, source);
  }
  return parsed.data;
}

/** The timeout hierarchy from the duration variables (seconds in, ms out; not yet validated). */
function buildTimeouts(v: ParsedEnvironment): TimeoutConfig {
  return buildTimeoutConfig({
    simple: v.SIMPLE_TOOL_TIMEOUT_SECS,
    workflow: v.WORKFLOW_TOOL_TIMEOUT_SECS,
    expert: v.EXPERT_ANALYSIS_TIMEOUT_SECS ?? derivedExpertSeconds(v.WORKFLOW_TOOL_TIMEOUT_SECS),
    daemon: v.EXAI_WS_CALL_TIMEOUT,
    shim: v.EXAI_SHIM_RPC_TIMEOUT,
    http: v.EX_HTTP_TIMEOUT_SECONDS,
    connect: v.EX_CONNECT_TIMEOUT_SECS,
    streamIdle: v.EX_STREAM_IDLE_TIMEOUT_SECS,
    glm: v.GLM_TIMEOUT_SECS,
    kimi: v.KIMI_TIMEOUT_SECS,
    custom: v.CUSTOM_TIMEOUT_SECS,
    kimiWebSearch: v.KIMI_WEB_SEARCH_TIMEOUT_SECS,
    expertHeartbeat: v.EXPERT_HEARTBEAT_INTERVAL_SECS,
    progressInterval: v.EXAI_WS_PROGRESS_INTERVAL_SECS,
  });
}

type PoolPrefix = "GLM" | "KIMI" | "CUSTOM";

/** The connection-pool sizes of one provider. */
function poolOf(v: ParsedEnvironment, prefix: PoolPrefix) {
  return {
    maxConnections: v[`${prefix}_MAX_CONNECTIONS`],
    maxKeepaliveConnections: v[`${prefix}_MAX_KEEPALIVE_CONNECTIONS`],
  };
}

/**
 * The enabled providers (GLM and Kimi by their key, custom by its URL); appends to `problems` a
 * keep-alive pool larger than its connection pool, and a custom URL without model names.
 */
function buildProviders(
  v: ParsedEnvironment,
  timeouts: TimeoutConfig,
  problems: HierarchyProblem[],
): Partial<Record<ProviderName, ProviderSettings>> {
  const providers: Partial<Record<ProviderName, ProviderSettings>> = {};
  for (const prefix of ["GLM", "KIMI", "CUSTOM"] as const) {
    const settings = poolOf(v, prefix);
    if (settings.maxKeepaliveConnections > settings.maxConnections) {
      problems.push({
        variables: [`${prefix}_MAX_KEEPALIVE_CONNECTIONS`, `${prefix}_MAX_CONNECTIONS`],
        message: `${prefix}_MAX_KEEPALIVE_CONNECTIONS (${settings.maxKeepaliveConnections}) must be ≤ ${prefix}_MAX_CONNECTIONS (${settings.maxConnections})`,
      });
    }
  }
  const glmKey = v.GLM_API_KEY;
  if (glmKey) {
    providers.glm = {
      name: "glm",
      apiKey: glmKey,
      baseUrl: v.GLM_API_URL,
      timeoutMs: timeouts.provider.glm,
      ...poolOf(v, "GLM"),
      allowedModels: v.GLM_ALLOWED_MODELS ?? [],
      models: [],
    };
  }
  const kimiKey = v.KIMI_API_KEY;
  if (kimiKey) {
    providers.kimi = {
      name: "kimi",
      apiKey: kimiKey,
      baseUrl: v.KIMI_API_URL,
      timeoutMs: timeouts.provider.kimi,
      ...poolOf(v, "KIMI"),
      allowedModels: v.KIMI_ALLOWED_MODELS ?? [],
      models: [],
    };
  }
  const customUrl = v.CUSTOM_API_URL;
  if (customUrl) {
    const models = v.CUSTOM_MODEL_NAME ?? [];
    if (models.length === 0) {
      problems.push({
        variables: ["CUSTOM_MODEL_NAME", "CUSTOM_API_URL"],
        message: `CUSTOM_API_URL is set (${customUrl}) but CUSTOM_MODEL_NAME is empty: name the model(s) the endpoint serves, e.g. CUSTOM_MODEL_NAME=llama3.2`,
      });
    }
    providers.custom = {
      name: "custom",
      apiKey: v.CUSTOM_API_KEY ?? "not-needed",
      baseUrl: customUrl,
      timeoutMs: timeouts.provider.custom,
      ...poolOf(v, "CUSTOM"),
      allowedModels: [],
      models,
    };
  }
  return providers;
}

/** Appends to `problems` every EXAI_ALLOWED_ROOTS entry that is not an absolute path. */
function checkRoots(roots: string[], problems: HierarchyProblem[]): void {
  for (const root of roots) {
    if (!isAbsolute(root)) {
      problems.push({
        variables: ["EXAI_ALLOWED_ROOTS"],
        message: `EXAI_ALLOWED_ROOTS entry ${JSON.stringify(root)} is not an absolute path`,
      });
    }
  }
}

/** EXAI_DATA_DIR as an absolute path: `~` is the home of `options.env`, relative is against `options.cwd`. */
function resolveDataDir(dataDirRaw: string, options: LoadConfigOptions): string {
  return dataDirRaw.startsWith("~")
    ? join(homeOf(options.env), dataDirRaw.slice(1))
    : resolve(options.cwd, dataDirRaw);
}

/** The daemon's address, TCP token mode and result lifetime (ms). */
function daemonSettings(v: ParsedEnvironment): Config["daemon"] {
  const token = v.EXAI_WS_TOKEN;
  return {
    host: v.EXAI_WS_HOST,
    port: v.EXAI_WS_PORT,
    ...(token && token !== "off" ? { token } : {}),
    tokenMode: token === "off" ? "off" : token ? "set" : "generate",
    resultTtlMs: v.EXAI_WS_RESULT_TTL * 1000,
  };
}

/** The admission caps: in total, per provider, per session and per tool (`toolCaps`). */
function admissionSettings(v: ParsedEnvironment, toolCaps: Record<string, number>): Config["admission"] {
  return {
    global: v.EXAI_WS_GLOBAL_MAX_INFLIGHT,
    provider: {
      glm: v.EXAI_WS_GLM_MAX_INFLIGHT,
      kimi: v.EXAI_WS_KIMI_MAX_INFLIGHT,
      custom: v.EXAI_WS_CUSTOM_MAX_INFLIGHT,
    },
    session: v.EXAI_WS_SESSION_MAX_INFLIGHT,
    tool: toolCaps,
    retries: 3,
  };
}

/** The size and depth bounds, MiB variables converted to bytes. */
function limitSettings(v: ParsedEnvironment): Config["limits"] {
  return {
    imageBytes: v.EXAI_MAX_IMAGE_MB * MIB,
    messageBytes: v.EXAI_MAX_MESSAGE_MB * MIB,
    argumentDepth: v.EXAI_MAX_ARGUMENT_DEPTH,
    ...(v.EXAI_MAX_STREAM_CHARS !== undefined ? { streamChars: v.EXAI_MAX_STREAM_CHARS } : {}),
    wsBacklogBytes: v.EXAI_WS_MAX_BACKLOG_MB * MIB,
    resultCacheBytes: v.EXAI_WS_RESULT_CACHE_MB * MIB,
    mcpSessions: v.EXAI_MCP_MAX_SESSIONS,
  };
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

function configInvalid(
  problems: Array<{ variables: string[]; message: string }>,
  source: ConfigSource,
): ExaiError {
  const names = [...new Set(problems.flatMap((problem) => problem.variables))];
  const lines = problems.map((problem) => `  - ${problem.message}`).join("\n");
  return new ExaiError(
    "CONFIG_INVALID",
    `invalid configuration (${names.join(", ")}):\n${lines}\nFix the variable(s) in the environment or in ${source.file ?? source.searched}; see .env.example.`,
    { details: { problems, variables: names } },
  );
}
