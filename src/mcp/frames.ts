/**
 * The daemon's WebSocket protocol (SPEC §7): JSON text frames, one object per frame, `op` names the
 * frame. The op names, close codes and error codes here are a contract shared by the daemon, the
 * shim and third-party clients; the Python original hung calls when two sides disagreed on one
 * (`call_tool` vs `tool_call`), so both sides import them from this module and validate every frame
 * they receive with the zod schemas below.
 *
 * Client → daemon: hello, list_tools, call_tool, cancel, health.
 * Daemon → client: hello_ack, list_tools_res, call_tool_ack, progress, call_tool_res, health_res, error.
 *
 * Trust (who may use a daemon):
 * - The shim reaches its daemon only through the Unix socket `EXAI_DATA_DIR/daemon.sock`. The data
 *   directory is mode 0700 and owned by the user, so the kernel refuses every other uid (EACCES)
 *   and nothing else can plant a socket there: the directory's permissions are the authentication,
 *   no token is sent over the socket. Before it connects the shim verifies (`verifyDaemonSocket`)
 *   that the directory belongs to its own uid and is closed to group/other and that the socket file
 *   belongs to its uid; otherwise it sends nothing at all.
 * - The TCP port (EXAI_WS_HOST:EXAI_WS_PORT: WebSocket, `/mcp`, `/metrics`, `/health` details)
 *   requires a token unless EXAI_WS_TOKEN=off: EXAI_WS_TOKEN, else the one generated at first start
 *   into `EXAI_DATA_DIR/daemon.token` (0600).
 * - A session is resumed only by its owner: `hello_ack` returns `session_id` and a `resume_secret`
 *   (32 random bytes, base64url); a hello presenting a `session_id` without its matching
 *   `resume_secret` (compared in constant time) is given a fresh session, so a leaked session id
 *   gives no access to that session's calls or cached results. Session ids appear in no output
 *   another client can read (/health, /metrics, the health op).
 * - A client whose unread backlog passes EXAI_WS_MAX_BACKLOG_MB is closed with 4008.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { isAbsolute } from "node:path";
import { z } from "zod";
import { ERROR_CODES } from "../base/errors.js";

/** Default largest frame either side accepts, bytes (32 MiB); the daemon uses EXAI_MAX_MESSAGE_MB. */
export const MAX_FRAME_BYTES = 32 * 1024 * 1024;
/**
 * Largest frame accepted before the hello (64 KiB): an unauthenticated peer gets close 1009 for a
 * bigger one instead of having up to MAX_FRAME_BYTES buffered and parsed.
 */
export const MAX_PRE_HELLO_FRAME_BYTES = 64 * 1024;
/** The first frame must be a hello within this many ms. */
export const HELLO_TIMEOUT_MS = 15_000;
/** The daemon pings every client this often, ms; a client that missed the previous pong is dropped. */
export const PING_INTERVAL_MS = 45_000;

/** WebSocket close codes of the hello handshake (and the standard ones the daemon uses). */
export const CLOSE_CODES = {
  /** The first frame was not a valid hello. */
  INVALID_HELLO: 4000,
  /** EXAI_WS_TOKEN is set and the hello carried no token. */
  TOKEN_MISSING: 4001,
  /** No hello within the hello timeout. */
  HELLO_TIMEOUT: 4002,
  /** The hello's token did not match EXAI_WS_TOKEN. */
  UNAUTHORIZED: 4003,
  /** The client left more than EXAI_WS_MAX_BACKLOG_MB of frames unread (it does not read its socket). */
  BACKLOG: 4008,
  /** Normal close (client or daemon). */
  NORMAL: 1000,
  /** The daemon is shutting down. */
  GOING_AWAY: 1001,
  /** A frame exceeded MAX_FRAME_BYTES (sent by `ws` itself), or MAX_PRE_HELLO_FRAME_BYTES before the hello. */
  TOO_BIG: 1009,
} as const;

/** Error codes of `{op:"error"}` frames (protocol errors, not call errors). */
export const PROTOCOL_ERROR_CODES = ["BAD_FRAME", "UNKNOWN_OP"] as const;
export type ProtocolErrorCode = (typeof PROTOCOL_ERROR_CODES)[number];

/** Every op a client may send. */
export const CLIENT_OPS = ["hello", "list_tools", "call_tool", "cancel", "health"] as const;
export type ClientOp = (typeof CLIENT_OPS)[number];

/** request_id / session_id: opaque, printable, bounded (UUIDs in practice). */
const IDENTIFIER = /^[\w.:-]{1,128}$/;
const identifier = z.string().regex(IDENTIFIER, "must be 1–128 characters of [A-Za-z0-9_.:-]");

// ---------------------------------------------------------------------------------------------
// Client → daemon
// ---------------------------------------------------------------------------------------------

/** Per-variable short hashes of the provider settings (see `providerFingerprintOf`). */
const fingerprintSchema = z.record(z.string().max(64), z.string().max(64));

export const helloFrameSchema = z.object({
  op: z.literal("hello"),
  /** Shared secret (EXAI_WS_TOKEN or the generated token); needed on TCP only. Never logged. */
  token: z.string().max(4096).optional(),
  /** A session to resume (the shim sends back the one it was given after a reconnect). */
  session_id: identifier.optional(),
  /** The `resume_secret` of `session_id`'s hello_ack: without it the hello gets a fresh session. Never logged. */
  resume_secret: z.string().max(128).optional(),
  /**
   * Where the client's configuration comes from (an addition to SPEC §7): a daemon whose own
   * configuration file differs (another file, or the same file with other content) re-reads its
   * configuration before serving it. `provider_fingerprint` lets the client tell the user which
   * provider variables of its environment the daemon does not share.
   */
  config: z
    .object({
      env_file: z.string().max(4096).optional(),
      env_sha256: z.string().max(128).optional(),
      provider_fingerprint: fingerprintSchema.optional(),
    })
    .optional(),
  client: z
    .object({ name: z.string().max(200), version: z.string().max(100) })
    .partial()
    .optional(),
});
export type HelloFrame = z.infer<typeof helloFrameSchema>;

export const listToolsFrameSchema = z.object({ op: z.literal("list_tools") });

export const callToolFrameSchema = z.object({
  op: z.literal("call_tool"),
  /** Idempotency key of this request: re-sent after a reconnect, it attaches or returns the cached result. */
  request_id: identifier,
  name: z.string().min(1).max(200),
  arguments: z.record(z.string(), z.unknown()).optional().default({}),
  /** Explicit idempotency key across requests: a second request with it while one runs → DUPLICATE. */
  call_key: z.string().min(1).max(512).optional(),
  trace_id: z
    .string()
    .regex(/^[\w-]{8,64}$/)
    .optional(),
  /** The caller's remaining budget, ms. */
  deadline_ms: z.number().finite().nonnegative().optional(),
  /** Send progress frames (default true). */
  progress: z.boolean().optional(),
  /**
   * The caller's filesystem roots (absolute paths): the MCP client's roots, else the shim's cwd.
   * The file sandbox of the call (EXAI_ALLOWED_ROOTS of the daemon, when set, still wins).
   * An addition to the SPEC §7 frame; without it the daemon's roots apply.
   */
  roots: z
    .array(
      z
        .string()
        .min(1)
        .max(4096)
        .refine((root) => isAbsolute(root), "must be an absolute path"),
    )
    .max(256)
    .optional(),
});
export type CallToolFrame = z.infer<typeof callToolFrameSchema>;

export const cancelFrameSchema = z.object({ op: z.literal("cancel"), request_id: identifier });
export const healthFrameSchema = z.object({ op: z.literal("health") });

export const clientFrameSchema = z.discriminatedUnion("op", [
  helloFrameSchema,
  listToolsFrameSchema,
  callToolFrameSchema,
  cancelFrameSchema,
  healthFrameSchema,
]);
export type ClientFrame = z.infer<typeof clientFrameSchema>;

// ---------------------------------------------------------------------------------------------
// Daemon → client
// ---------------------------------------------------------------------------------------------

export const helloAckFrameSchema = z.object({
  op: z.literal("hello_ack"),
  ok: z.literal(true),
  session_id: identifier,
  server_version: z.string(),
  /**
   * Identifies this daemon process (an addition to the SPEC §7 frame): a shim that reconnects and
   * finds another daemon knows its in-flight calls died with the old one and must not re-send them.
   */
  daemon_id: z.string().optional(),
  /** The secret that resumes `session_id` in a later hello (32 random bytes, base64url). */
  resume_secret: z.string().max(128).optional(),
  /** Where the daemon's configuration comes from, and its provider fingerprint. */
  config: z
    .object({
      env_file: z.string().max(4096).optional(),
      searched: z.string().max(4096).optional(),
      provider_fingerprint: fingerprintSchema.optional(),
    })
    .optional(),
});
export type HelloAckFrame = z.infer<typeof helloAckFrameSchema>;

export const listToolsResFrameSchema = z.object({
  op: z.literal("list_tools_res"),
  tools: z.array(z.looseObject({ name: z.string(), inputSchema: z.looseObject({}) })),
});
export type ListToolsResFrame = z.infer<typeof listToolsResFrameSchema>;

export const callToolAckFrameSchema = z.object({
  op: z.literal("call_tool_ack"),
  request_id: identifier,
  trace_id: z.string(),
  /** The budget the call runs under, seconds. */
  timeout_s: z.number().nonnegative(),
});
export type CallToolAckFrame = z.infer<typeof callToolAckFrameSchema>;

export const progressFrameSchema = z.object({
  op: z.literal("progress"),
  request_id: identifier,
  /** Seconds since the daemon started the call. */
  elapsed_s: z.number().nonnegative(),
  /** Seconds left of the call's budget. */
  remaining_s: z.number().nonnegative(),
  message: z.string(),
});
export type ProgressFrame = z.infer<typeof progressFrameSchema>;

/**
 * A call's error (SPEC §6.7): code, message, retry_after (s) for OVER_CAPACITY / RATE_LIMITED,
 * original_request_id for DUPLICATE. The daemon sends the whole error payload (trace_id, layer,
 * budget_s… as well), so extra keys are kept.
 */
export const callErrorSchema = z.looseObject({
  code: z.enum(ERROR_CODES),
  message: z.string(),
  retry_after: z.number().nonnegative().optional(),
  original_request_id: z.string().optional(),
  trace_id: z.string().optional(),
});
export type CallError = z.infer<typeof callErrorSchema>;

/** What a successful call returns: the MCP CallToolResult's content and structuredContent. */
export const callOutputsSchema = z.looseObject({
  content: z.array(z.looseObject({ type: z.string() })),
  structuredContent: z.record(z.string(), z.unknown()).optional(),
});
export type CallOutputs = z.infer<typeof callOutputsSchema>;

export const callToolResFrameSchema = z.object({
  op: z.literal("call_tool_res"),
  request_id: identifier,
  outputs: callOutputsSchema.optional(),
  error: callErrorSchema.optional(),
  /** The CALL SUMMARY of the call (tool, trace_id, duration_ms, outcome, …). */
  summary: z.record(z.string(), z.unknown()),
});
export type CallToolResFrame = z.infer<typeof callToolResFrameSchema>;

export const healthResFrameSchema = z.looseObject({ op: z.literal("health_res"), status: z.string() });
export type HealthResFrame = z.infer<typeof healthResFrameSchema>;

export const errorFrameSchema = z.object({
  op: z.literal("error"),
  code: z.enum(PROTOCOL_ERROR_CODES),
  message: z.string(),
  /**
   * The rejected frame's request_id, whenever it could be read from it (an addition to SPEC §7):
   * the client fails that call at once instead of waiting for an answer that will never come.
   */
  request_id: identifier.optional(),
});
export type ErrorFrame = z.infer<typeof errorFrameSchema>;

export const serverFrameSchema = z.discriminatedUnion("op", [
  helloAckFrameSchema,
  listToolsResFrameSchema,
  callToolAckFrameSchema,
  progressFrameSchema,
  callToolResFrameSchema,
  healthResFrameSchema,
  errorFrameSchema,
]);
export type ServerFrame = z.infer<typeof serverFrameSchema>;

// ---------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------

export type ParseResult<T> =
  { ok: true; frame: T } | { ok: false; code: ProtocolErrorCode; message: string; requestId?: string };

/** The request_id of a rejected frame, when it has a well-formed one (to echo in the error frame). */
function readableRequestId(value: Record<string, unknown>): { requestId?: string } {
  const id = value.request_id;
  return typeof id === "string" && IDENTIFIER.test(id) ? { requestId: id } : {};
}

/** Short, secret-free description of zod issues ("request_id: must be …; name: required"). */
function describeIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 5)
    .map((issue) => `${issue.path.length > 0 ? issue.path.join(".") : "frame"}: ${issue.message}`)
    .join("; ");
}

function parseJsonObject(
  text: string,
): { ok: true; value: Record<string, unknown> } | { ok: false; message: string } {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return { ok: false, message: `not valid JSON (${(error as Error).message})` };
  }
  if (typeof value !== "object" || value === null || Array.isArray(value))
    return { ok: false, message: "a frame must be a JSON object with an `op` field" };
  return { ok: true, value: value as Record<string, unknown> };
}

/**
 * Parses and validates a frame a client sent. Never throws.
 * - Not JSON / not an object / a known op with invalid fields → BAD_FRAME.
 * - A string `op` that is not a client op → UNKNOWN_OP.
 * A failure carries `requestId` when the object has a well-formed `request_id`.
 * The messages never echo field values (a frame may carry the token).
 */
export function parseClientFrame(text: string): ParseResult<ClientFrame> {
  const json = parseJsonObject(text);
  if (!json.ok) return { ok: false, code: "BAD_FRAME", message: json.message };
  const echo = readableRequestId(json.value);
  const op = json.value.op;
  if (typeof op !== "string")
    return { ok: false, code: "BAD_FRAME", message: "missing string field `op`", ...echo };
  if (!(CLIENT_OPS as readonly string[]).includes(op)) {
    return {
      ok: false,
      code: "UNKNOWN_OP",
      message: `unknown op ${JSON.stringify(op.slice(0, 64))}; expected one of ${CLIENT_OPS.join(", ")}`,
      ...echo,
    };
  }
  const parsed = clientFrameSchema.safeParse(json.value);
  if (!parsed.success) {
    return {
      ok: false,
      code: "BAD_FRAME",
      message: `invalid ${op} frame: ${describeIssues(parsed.error)}`,
      ...echo,
    };
  }
  return { ok: true, frame: parsed.data };
}

/** Parses and validates a frame the daemon sent (used by the shim). Never throws. */
export function parseServerFrame(text: string): ParseResult<ServerFrame> {
  const json = parseJsonObject(text);
  if (!json.ok) return { ok: false, code: "BAD_FRAME", message: json.message };
  const parsed = serverFrameSchema.safeParse(json.value);
  if (!parsed.success) {
    const op = typeof json.value.op === "string" ? json.value.op.slice(0, 64) : "?";
    return { ok: false, code: "BAD_FRAME", message: `invalid ${op} frame: ${describeIssues(parsed.error)}` };
  }
  return { ok: true, frame: parsed.data };
}

/**
 * Compares a presented token with EXAI_WS_TOKEN in constant time: both are hashed (sha256) first,
 * so the comparison never depends on where they differ nor leaks the expected length.
 */
export function tokensEqual(expected: string, presented: string): boolean {
  const a = createHash("sha256").update(expected, "utf8").digest();
  const b = createHash("sha256").update(presented, "utf8").digest();
  return timingSafeEqual(a, b);
}

/** The file name of the daemon's Unix socket inside EXAI_DATA_DIR. */
export const SOCKET_FILE = "daemon.sock";
/** The file name of the generated TCP token inside EXAI_DATA_DIR (mode 0600). */
export const TOKEN_FILE = "daemon.token";
