/**
 * The tool framework (SPEC §4): a tool is a zod input schema, a description, a kind (which decides
 * its timeout) and a handler. The handler gets a ToolContext carrying the call's deadline, signal,
 * trace_id and the services it may use; it returns a JSON object (sent as JSON text and as
 * `structuredContent`) or throws an ExaiError (sent as an `isError` result).
 */
import { z } from "zod";
import type { Config, ProviderName } from "../config/load.js";
import { ExaiError, type TimeoutLayer } from "../base/errors.js";
import type { FileReader } from "../files/reader.js";
import type { Logger } from "../base/logging.js";
import type { TokenCounter } from "../memory/tokenizer.js";
import type { AdmissionSnapshot } from "../pipeline/admission.js";
import type { ChatRequest, ChatResult, JsonRequestInit } from "../providers/types.js";
import type { ModelRegistry, ResolvedModel } from "../providers/registry.js";
import type { Store } from "../store/store.js";

type ToolKind = "simple" | "workflow" | "utility";

interface ToolAnnotations {
  title?: string;
  readOnlyHint?: boolean;
  destructiveHint?: boolean;
  idempotentHint?: boolean;
  openWorldHint?: boolean;
}

/** Live figures of the running server, for the status / health / activity tools. */
export interface RuntimeStats {
  mode: "stdio" | "daemon";
  startedAt: number;
  inflight: number;
  admission: AdmissionSnapshot;
  calls: { total: number; byOutcome: Record<string, number> };
  /** How many tools this server serves (after TOOL_PROFILE / ENABLED_TOOLS / DISABLED_TOOLS). */
  tools: number;
}

/** What every tool may use. Built once per server by the runtime. */
export interface Services {
  config: Config;
  registry: ModelRegistry;
  store: Store;
  tokens: TokenCounter;
  logger: Logger;
  version: string;
  /** A file reader whose sandbox is limited to `roots` (the client's roots) or the configured roots. */
  files(roots?: readonly string[]): FileReader;
  stats(): RuntimeStats;
  /** The JSONL tool-call log path (read by toolcall_log_tail / activity). */
  toolCallLogPath: string;
  /** Appends one record to the JSONL tool-call log (buffered; never blocks the call). */
  appendToolCallLog(record: Record<string, unknown>): void;
}

export interface ModelCall extends Omit<ChatRequest, "model"> {
  model: ResolvedModel;
  /** A tighter budget for this model call (the expert analysis), ms; clipped to the call's deadline. */
  budgetMs?: number;
  layer?: TimeoutLayer;
}

/** A request to a provider endpoint other than chat (files, web search, model list). */
export interface ProviderRequest extends JsonRequestInit {
  provider: ProviderName;
  /** Relative to the provider's base URL: "/files", "/web_search". */
  path: string;
  /** A tighter budget for this request (a health probe), ms; clipped to the call's deadline. */
  budgetMs?: number;
  layer?: TimeoutLayer;
  /** Appended to the TIMEOUT message when that tighter budget runs out ("the provider did not answer…"). */
  timeoutHint?: string;
}

export interface ToolContext {
  readonly tool: string;
  readonly traceId: string;
  readonly signal: AbortSignal;
  /** Absolute deadline, ms on the monotonic clock. */
  readonly deadlineAt: number;
  readonly budgetMs: number;
  readonly layer: TimeoutLayer;
  readonly services: Services;
  /** File access for this call (the client's roots). */
  readonly files: FileReader;
  /** The model chosen at admission (when the tool needs one). */
  readonly model: ResolvedModel | undefined;
  remainingMs(): number;
  /** Sets the phase shown in progress heartbeats ("calling glm-4.5 attempt 2"). */
  progress(message: string): void;
  /**
   * Calls a model through its provider, inside this call's deadline (or `budgetMs`, if smaller).
   * @throws ExaiError NO_PROVIDER, TIMEOUT, RATE_LIMITED, PROVIDER_ERROR, CANCELLED…
   */
  callModel(request: ModelCall): Promise<ChatResult>;
  /**
   * One HTTP request to a provider endpoint (files, web search, `/models`), inside this call's
   * deadline (or `budgetMs`, if smaller), under a slot of the provider's cap
   * (EXAI_WS_<P>_MAX_INFLIGHT), retried when idempotent; its attempts count in the CALL SUMMARY.
   * Resolves to the parsed JSON body (`responseType: "text"`: the body as a string).
   * @throws ExaiError NO_PROVIDER, OVER_CAPACITY, TIMEOUT, RATE_LIMITED, PROVIDER_ERROR, MODEL_NOT_FOUND (404), CANCELLED.
   */
  providerRequest<T = unknown>(request: ProviderRequest): Promise<T>;
  /**
   * The chat-completions body `callModel(request)` would send (first round), without network access.
   * @throws ExaiError NO_PROVIDER.
   */
  previewChatBody(request: ModelCall): Record<string, unknown>;
}

export interface ToolDefinition<A = Record<string, unknown>> {
  name: string;
  description: string;
  kind: ToolKind;
  schema: z.ZodType<A>;
  annotations?: ToolAnnotations;
  /** The model this call will use, when it uses one (resolved before admission, so the provider cap applies). */
  selectModel?(args: A, services: Services): ResolvedModel | undefined;
  /**
   * The provider a call without a model talks to (files, web search): admission takes a slot of
   * its cap before the call runs, as it does for the provider of `selectModel`'s model.
   */
  selectProvider?(args: A, services: Services): ProviderName | undefined;
  run(args: A, context: ToolContext): Promise<Record<string, unknown>>;
}

/** Declares a tool with its argument type inferred from the schema. */
export function defineTool<S extends z.ZodType<Record<string, unknown>>>(
  definition: Omit<ToolDefinition<z.infer<S>>, "schema"> & { schema: S },
): ToolDefinition {
  return definition as unknown as ToolDefinition;
}

/** A tool as listed by MCP `tools/list` (and the daemon's list_tools). */
interface ToolListEntry {
  name: string;
  description: string;
  inputSchema: { type: "object"; [key: string]: unknown };
  annotations?: ToolAnnotations;
}

/** The `tools/list` entries for a set of tools (JSON Schema inputs, annotations). */
export function listTools(tools: readonly ToolDefinition[]): ToolListEntry[] {
  return tools.map((tool) => ({
    name: tool.name,
    description: tool.description,
    inputSchema: inputJsonSchema(tool) as ToolListEntry["inputSchema"],
    ...(tool.annotations ? { annotations: tool.annotations } : {}),
  }));
}

/** The JSON Schema of a tool's input for `tools/list` (object schema, no `$schema` noise). */
function inputJsonSchema(tool: ToolDefinition): Record<string, unknown> {
  const schema = z.toJSONSchema(tool.schema, { io: "input", unrepresentable: "any" }) as Record<
    string,
    unknown
  >;
  delete schema.$schema;
  compactSchema(schema);
  if (schema.type !== "object") return { type: "object", properties: {}, ...schema };
  return schema;
}

/**
 * Removes what costs the client's context without helping it: zod's safe-integer bounds on every
 * `.int()` and the long regex it adds to `format: "uuid"` (the server validates both anyway).
 */
function compactSchema(node: unknown): void {
  if (Array.isArray(node)) {
    for (const item of node) compactSchema(item);
    return;
  }
  if (node === null || typeof node !== "object") return;
  const record = node as Record<string, unknown>;
  if (record.maximum === Number.MAX_SAFE_INTEGER) delete record.maximum;
  if (record.minimum === Number.MIN_SAFE_INTEGER) delete record.minimum;
  if (record.format === "uuid") delete record.pattern;
  for (const value of Object.values(record)) compactSchema(value);
}

/**
 * Validates arguments against the tool's schema.
 * @throws ExaiError INVALID_ARGUMENT naming the first offending field, its value and the rule.
 */
export function parseArguments<A>(tool: ToolDefinition<A>, raw: unknown): A {
  const result = tool.schema.safeParse(raw ?? {});
  if (result.success) return result.data;
  const issues = result.error.issues.slice(0, 3).map((issue) => {
    const field = issue.path.length > 0 ? formatPath(issue.path) : "arguments";
    const value = valueAt(raw, issue.path);
    if (value === undefined && issue.code === "invalid_type")
      return { field, text: `${field}: required field is missing` };
    const shown = value === undefined ? "" : ` (got ${JSON.stringify(value)?.slice(0, 80)})`;
    return { field, text: `${field}: ${issue.message}${shown}` };
  });
  const first = issues[0] ?? { field: "arguments", text: "arguments: invalid" };
  return failArguments(tool.name, first.field, issues.map((issue) => issue.text).join("; "));
}

function failArguments(tool: string, field: string, text: string): never {
  throw new ExaiError("INVALID_ARGUMENT", `${tool}: ${text}`, { details: { field } });
}

function formatPath(path: ReadonlyArray<PropertyKey>): string {
  return path.reduce<string>(
    (text, part) =>
      typeof part === "number" ? `${text}[${part}]` : text ? `${text}.${String(part)}` : String(part),
    "",
  );
}

function valueAt(raw: unknown, path: ReadonlyArray<PropertyKey>): unknown {
  let current: unknown = raw;
  for (const part of path) {
    if (current === null || typeof current !== "object") return undefined;
    current = (current as Record<PropertyKey, unknown>)[part];
  }
  return current;
}
