/**
 * The one error type of exai (SPEC §6.7). Every failure that reaches a user carries a stable
 * `code`, a message that says what happened, where and what to do, and whether a retry can help.
 */

/** Stable error codes (SPEC §6.7). Clients and tests match on these strings. */
export const ERROR_CODES = [
  "TIMEOUT",
  "CANCELLED",
  "OVER_CAPACITY",
  "DUPLICATE",
  "RATE_LIMITED",
  "PROVIDER_ERROR",
  "NO_PROVIDER",
  "MODEL_NOT_FOUND",
  "INVALID_ARGUMENT",
  "FILE_ACCESS_DENIED",
  "CONFIG_INVALID",
  "INTERNAL",
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

/** Where a timeout fired: the layer names used in messages and metrics. */
export type TimeoutLayer =
  | "connect"
  | "first_chunk"
  | "stream_idle"
  | "http"
  | "expert"
  | "tool"
  | "daemon"
  | "shim"
  | "client"
  | "web_search";

export interface ExaiErrorOptions {
  cause?: unknown;
  /** True when the same request may succeed if tried again (after `retryAfterS`). */
  retryable?: boolean;
  /** Seconds the caller should wait before trying again (OVER_CAPACITY, RATE_LIMITED). */
  retryAfterS?: number;
  /** Extra machine-readable facts (layer, budget_s, attempts, field, path, original_request_id…). */
  details?: Record<string, unknown>;
}

const BRAND = Symbol.for("exai.error");

export class ExaiError extends Error {
  readonly code: ErrorCode;
  readonly retryable: boolean;
  readonly retryAfterS: number | undefined;
  readonly details: Record<string, unknown>;
  readonly [BRAND] = true;

  constructor(code: ErrorCode, message: string, options: ExaiErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "ExaiError";
    this.code = code;
    this.retryable = options.retryable ?? false;
    this.retryAfterS = options.retryAfterS;
    this.details = options.details ?? {};
  }

  /** Brand check that survives two copies of this module (e.g. dist and src in one test run). */
  static is(value: unknown): value is ExaiError {
    return typeof value === "object" && value !== null && (value as Record<symbol, unknown>)[BRAND] === true;
  }

  /** The wire shape of an error (SPEC §4, §7): what clients see. */
  toPayload(traceId?: string): ErrorPayload {
    const payload: ErrorPayload = { status: "error", code: this.code, message: this.message };
    if (traceId !== undefined) payload.trace_id = traceId;
    if (this.retryAfterS !== undefined) payload.retry_after = round3(this.retryAfterS);
    for (const [key, value] of Object.entries(this.details)) {
      if (!(key in payload)) (payload as unknown as Record<string, unknown>)[key] = value;
    }
    return payload;
  }
}

export interface ErrorPayload {
  status: "error";
  code: ErrorCode;
  message: string;
  trace_id?: string;
  retry_after?: number;
  [key: string]: unknown;
}

/**
 * Turns anything thrown into an ExaiError. Environment faults (a full disk, a read-only or
 * unreadable data directory, too many open files) become INTERNAL naming the OS error and the fix;
 * other unknown errors become INTERNAL with their message (never a stack trace) so the user still
 * learns what failed.
 */
export function toExaiError(error: unknown, where = "exai"): ExaiError {
  if (ExaiError.is(error)) return error;
  const environment = environmentFault(error, where);
  if (environment) return environment;
  const message = error instanceof Error ? error.message : String(error);
  return new ExaiError(
    "INTERNAL",
    `${where}: unexpected failure: ${message}. This is a bug; please report it.`,
    {
      cause: error,
    },
  );
}

/** What each OS / SQLite error means for the user, and what they can do about it. */
const ENVIRONMENT_FAULTS: Record<string, { what: string; fix: string; retryable?: boolean }> = {
  ENOSPC: { what: "no space left on the device", fix: "free disk space on the volume of EXAI_DATA_DIR" },
  EDQUOT: {
    what: "disk quota exceeded",
    fix: "free space or raise the quota of the volume of EXAI_DATA_DIR",
  },
  EROFS: {
    what: "the file system is read-only",
    fix: "point EXAI_DATA_DIR at a writable directory",
  },
  EACCES: {
    what: "permission denied",
    fix: "check that the user running exai owns EXAI_DATA_DIR and can write to it (mode 0700)",
  },
  EPERM: {
    what: "operation not permitted",
    fix: "check that the user running exai owns EXAI_DATA_DIR and can write to it (mode 0700)",
  },
  ENOTDIR: {
    what: "a path component is not a directory",
    fix: "point EXAI_DATA_DIR at a directory (not a file)",
  },
  EMFILE: {
    what: "too many open files in this process",
    fix: "raise the open-file limit (ulimit -n) or lower the EXAI_WS_*_MAX_INFLIGHT caps",
    retryable: true,
  },
  ENFILE: {
    what: "too many open files on the system",
    fix: "close other programs' files or raise the system's open-file limit",
    retryable: true,
  },
  SQLITE_FULL: {
    what: "the database or its disk is full",
    fix: "free disk space on the volume of EXAI_DATA_DIR",
  },
  SQLITE_READONLY: {
    what: "the database is read-only",
    fix: "check that EXAI_DATA_DIR and exai.db in it are writable by the user running exai",
  },
  SQLITE_CANTOPEN: {
    what: "the database file cannot be opened",
    fix: "check that EXAI_DATA_DIR exists and is writable by the user running exai",
  },
};

/**
 * Maps an OS errno error (ENOSPC, EROFS, EACCES, EPERM, ENOTDIR, EMFILE, ENFILE, EDQUOT) or a SQLite
 * error (SQLITE_FULL / SQLITE_READONLY / SQLITE_CANTOPEN and their extended codes) to an INTERNAL
 * ExaiError that names the OS error and says what to do — an environment fault, not a bug.
 * Returns undefined for anything else.
 */
export function environmentFault(error: unknown, where = "exai"): ExaiError | undefined {
  if (typeof error !== "object" || error === null) return undefined;
  const raw = (error as { code?: unknown }).code;
  if (typeof raw !== "string") return undefined;
  // SQLite extended codes (SQLITE_READONLY_DBMOVED, SQLITE_CANTOPEN_ISDIR…) share their base's meaning.
  const code = Object.hasOwn(ENVIRONMENT_FAULTS, raw)
    ? raw
    : Object.keys(ENVIRONMENT_FAULTS).find(
        (name) => name.startsWith("SQLITE_") && raw.startsWith(`${name}_`),
      );
  if (code === undefined) return undefined;
  const fault = ENVIRONMENT_FAULTS[code];
  if (!fault) return undefined;
  const path = (error as { path?: unknown }).path;
  const syscall = (error as { syscall?: unknown }).syscall;
  const on =
    typeof path === "string"
      ? ` (${typeof syscall === "string" ? `${syscall} ` : ""}${path})`
      : typeof syscall === "string"
        ? ` (${syscall})`
        : "";
  return new ExaiError("INTERNAL", `${where}: ${raw}: ${fault.what}${on}; ${fault.fix}`, {
    cause: error,
    retryable: fault.retryable ?? false,
    details: { os_error: raw, environment: true, ...(typeof path === "string" ? { path } : {}) },
  });
}

/** Shorthand for the most common user error: a bad argument, named by field. */
export function invalidArgument(
  field: string,
  message: string,
  details: Record<string, unknown> = {},
): ExaiError {
  return new ExaiError("INVALID_ARGUMENT", `${field}: ${message}`, { details: { field, ...details } });
}

/** Formats seconds for messages: "30.0 s", "0.25 s". */
export function formatSeconds(seconds: number): string {
  if (seconds >= 10) return `${seconds.toFixed(1)} s`;
  return `${Number(seconds.toFixed(2))} s`;
}

function round3(value: number): number {
  return Math.round(value * 1000) / 1000;
}
