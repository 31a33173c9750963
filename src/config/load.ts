/**
 * Loads the configuration once, at the boundary (SPEC §3): the real environment, then one
 * user-level file (`EXAI_ENV_FILE`, else `$XDG_CONFIG_HOME/exai/.env`, else `~/.config/exai/.env`);
 * the real environment wins. Never the working directory's `.env`: MCP clients start the server in
 * whatever project the user opened, and that project must not redirect keys or widen roots. One zod
 * parse, then the hierarchy check. Code below this layer never reads `process.env`; it receives a
 * `Config`.
 */
import { createHash } from "node:crypto";
import { closeSync, constants, fstatSync, openSync, readSync } from "node:fs";
import { homedir } from "node:os";
import { isAbsolute, join, resolve } from "node:path";
import { parse as parseDotenv } from "dotenv";
import { ExaiError } from "../base/errors.js";
import {
  buildTimeoutConfig,
  derivedExpertSeconds,
  validateHierarchy,
  type TimeoutConfig,
} from "./timeouts.js";
import { buildEnvironmentSchema, VARIABLES, type RawEnvironment } from "./variables.js";

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

/** Largest user-level configuration file read, bytes. */
export const MAX_ENV_FILE_BYTES = 1024 * 1024;

const PROVIDER_VARIABLE = /^(GLM|KIMI|CUSTOM)_(API_KEY|API_URL|MODEL_NAME|ALLOWED_MODELS)$/;
/**
 * Names that make a project's `.env` look like exai configuration: every exai variable except the
 * generic ones most web projects set for themselves (a warning for those would be noise).
 */
const EXAI_VARIABLES = new Set<string>(
  VARIABLES.map((spec) => spec.name).filter((name) => name !== "DATABASE_URL" && name !== "REDIS_URL"),
);

/** The home directory: `HOME` of `env` when set, else the OS's. */
function homeOf(env: RawEnvironment): string {
  const home = env.HOME?.trim();
  return home && isAbsolute(home) ? home : homedir();
}

/**
 * Where the user-level configuration file is looked for (absolute): `EXAI_ENV_FILE` (`~/` expanded,
 * relative paths resolved against the process working directory), else `$XDG_CONFIG_HOME/exai/.env`
 * when XDG_CONFIG_HOME is an absolute path, else `$HOME/.config/exai/.env`. With
 * `EXAI_ENV_FILE=off` the path is still the default one (shown by `exai config`), but nothing is read.
 */
export function userConfigPath(env: RawEnvironment): string {
  const explicit = env.EXAI_ENV_FILE?.trim();
  if (explicit && explicit.toLowerCase() !== "off") {
    if (explicit === "~" || explicit.startsWith("~/")) return join(homeOf(env), explicit.slice(1));
    return resolve(explicit);
  }
  const xdg = env.XDG_CONFIG_HOME?.trim();
  const base = xdg && isAbsolute(xdg) ? xdg : join(homeOf(env), ".config");
  return join(base, "exai", ".env");
}

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
  // The real environment wins, except where it sets a variable to the empty string (= unset).
  const merged: RawEnvironment = { ...source.fileEnv };
  for (const [name, value] of Object.entries(options.env)) {
    if (value !== undefined && (value.trim() !== "" || !(name in merged))) merged[name] = value;
  }
  const parsed = buildEnvironmentSchema().safeParse(merged);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => ({
      variables: [String(issue.path[0] ?? "?")],
      message: issue.message,
    }));
    throw configInvalid(problems, source.source);
  }
  const v = parsed.data;

  const timeouts = buildTimeoutConfig({
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
  const problems = validateHierarchy(timeouts);

  const toolCaps = parseToolCaps(v.EXAI_WS_TOOL_MAX_INFLIGHT);
  if (typeof toolCaps === "string")
    problems.push({ variables: ["EXAI_WS_TOOL_MAX_INFLIGHT"], message: toolCaps });

  const providers: Partial<Record<ProviderName, ProviderSettings>> = {};
  const pool = (prefix: "GLM" | "KIMI" | "CUSTOM") => ({
    maxConnections: v[`${prefix}_MAX_CONNECTIONS`],
    maxKeepaliveConnections: v[`${prefix}_MAX_KEEPALIVE_CONNECTIONS`],
  });
  for (const prefix of ["GLM", "KIMI", "CUSTOM"] as const) {
    const settings = pool(prefix);
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
      ...pool("GLM"),
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
      ...pool("KIMI"),
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
      ...pool("CUSTOM"),
      allowedModels: [],
      models,
    };
  }

  const roots = v.EXAI_ALLOWED_ROOTS ?? [];
  for (const root of roots) {
    if (!isAbsolute(root)) {
      problems.push({
        variables: ["EXAI_ALLOWED_ROOTS"],
        message: `EXAI_ALLOWED_ROOTS entry ${JSON.stringify(root)} is not an absolute path`,
      });
    }
  }
  if (problems.length > 0) throw configInvalid(problems, source.source);

  const dataDirRaw = v.EXAI_DATA_DIR;
  const dataDir = dataDirRaw.startsWith("~")
    ? join(homeOf(options.env), dataDirRaw.slice(1))
    : resolve(options.cwd, dataDirRaw);

  const token = v.EXAI_WS_TOKEN;
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
    dataDir,
    ...(v.DATABASE_URL ? { databaseUrl: v.DATABASE_URL } : {}),
    ...(v.REDIS_URL ? { redisUrl: v.REDIS_URL } : {}),
    daemon: {
      host: v.EXAI_WS_HOST,
      port: v.EXAI_WS_PORT,
      ...(token && token !== "off" ? { token } : {}),
      tokenMode: token === "off" ? "off" : token ? "set" : "generate",
      resultTtlMs: v.EXAI_WS_RESULT_TTL * 1000,
    },
    admission: {
      global: v.EXAI_WS_GLOBAL_MAX_INFLIGHT,
      provider: {
        glm: v.EXAI_WS_GLM_MAX_INFLIGHT,
        kimi: v.EXAI_WS_KIMI_MAX_INFLIGHT,
        custom: v.EXAI_WS_CUSTOM_MAX_INFLIGHT,
      },
      session: v.EXAI_WS_SESSION_MAX_INFLIGHT,
      tool: typeof toolCaps === "string" ? {} : toolCaps,
      retries: 3,
    },
    coalesce: { disabledFor: v.EXAI_WS_DISABLE_COALESCE_FOR_TOOLS ?? [] },
    ...(roots.length > 0 ? { allowedRoots: roots.map((root) => resolve(root)) } : {}),
    tools: {
      profile: v.TOOL_PROFILE,
      enabled: v.ENABLED_TOOLS ?? [],
      disabled: v.DISABLED_TOOLS ?? [],
    },
    logLevel: v.EXAI_LOG_LEVEL,
    limits: {
      imageBytes: v.EXAI_MAX_IMAGE_MB * MIB,
      messageBytes: v.EXAI_MAX_MESSAGE_MB * MIB,
      argumentDepth: v.EXAI_MAX_ARGUMENT_DEPTH,
      ...(v.EXAI_MAX_STREAM_CHARS !== undefined ? { streamChars: v.EXAI_MAX_STREAM_CHARS } : {}),
      wsBacklogBytes: v.EXAI_WS_MAX_BACKLOG_MB * MIB,
      resultCacheBytes: v.EXAI_WS_RESULT_CACHE_MB * MIB,
      mcpSessions: v.EXAI_MCP_MAX_SESSIONS,
    },
    cwd: options.cwd,
    source: source.source,
  };
}

/** The user-level file's variables and where they came from; see `loadConfig`. */
function readSources(options: LoadConfigOptions): { fileEnv: RawEnvironment; source: ConfigSource } {
  const searched = userConfigPath(options.env);
  const source: ConfigSource = { searched };
  let fileEnv: RawEnvironment = {};
  const off = options.env.EXAI_ENV_FILE?.trim().toLowerCase() === "off";
  if (options.envFile !== false && !off) {
    const explicit = Boolean(options.env.EXAI_ENV_FILE?.trim());
    const content = readEnvFile(searched, explicit ? "EXAI_ENV_FILE" : "the user configuration file", true);
    if (content === undefined) {
      if (explicit) {
        throw new ExaiError(
          "CONFIG_INVALID",
          `EXAI_ENV_FILE=${options.env.EXAI_ENV_FILE}: no such file (${searched}). Create it (exai init writes it) or unset EXAI_ENV_FILE.`,
          { details: { variables: ["EXAI_ENV_FILE"], path: searched } },
        );
      }
    } else {
      fileEnv = parseDotenv(content);
      source.file = searched;
      source.fileSha256 = createHash("sha256").update(content).digest("hex");
    }
  }
  if (options.envFile !== false) {
    const project = join(options.cwd, ".env");
    if (resolve(project) !== searched) {
      const content = readEnvFile(project, ".env", false);
      if (content !== undefined && Object.keys(parseDotenv(content)).some((name) => EXAI_VARIABLES.has(name)))
        source.ignoredProjectEnv = resolve(project);
    }
  }
  return { fileEnv, source };
}

/**
 * Reads a `.env` file safely: opened without blocking (a FIFO cannot stall start-up), then checked on
 * the open descriptor — a regular file of at most MAX_ENV_FILE_BYTES; when `trusted` (it will be used
 * as configuration) also owned by the current user and not writable by group or others.
 * @returns the content, or undefined when the file does not exist (or, untrusted, is unusable).
 * @throws ExaiError CONFIG_INVALID (trusted only) naming the file, what is wrong and the fix.
 */
function readEnvFile(path: string, label: string, trusted: boolean): Buffer | undefined {
  const reject = (message: string, error?: unknown): ExaiError =>
    new ExaiError("CONFIG_INVALID", `${label} ${path} ${message}`, {
      ...(error === undefined ? {} : { cause: error }),
      details: { variables: ["EXAI_ENV_FILE"], path },
    });
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR" || !trusted) return undefined;
    throw reject(
      `cannot be read (${code ?? (error as Error).message}); check its permissions (chmod 600, owned by you).`,
      error,
    );
  }
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile()) {
      if (!trusted) return undefined;
      throw reject("is not a regular file; put the configuration in a plain file (exai init writes one).");
    }
    const uid = typeof process.getuid === "function" ? process.getuid() : undefined;
    if (trusted && uid !== undefined && stat.uid !== uid) {
      throw reject(
        `is owned by uid ${stat.uid}, not by you (uid ${uid}); it holds your API keys and decides where they are sent. Fix: chown ${uid} ${path} (or recreate it with exai init --force).`,
      );
    }
    if (trusted && uid !== undefined && (stat.mode & 0o022) !== 0) {
      throw reject(
        `is writable by group or others (mode ${(stat.mode & 0o777).toString(8).padStart(4, "0")}); whoever can write it can redirect your API keys. Fix: chmod 600 ${path}`,
      );
    }
    if (stat.size > MAX_ENV_FILE_BYTES) {
      if (!trusted) return undefined;
      throw reject(
        `is ${stat.size} bytes, over the ${MAX_ENV_FILE_BYTES}-byte limit of a configuration file.`,
      );
    }
    const buffer = Buffer.alloc(stat.size);
    let read = 0;
    while (read < buffer.length) {
      const n = readSync(fd, buffer, read, buffer.length - read, read);
      if (n === 0) break;
      read += n;
    }
    return buffer.subarray(0, read);
  } finally {
    closeSync(fd);
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
