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

/** One attempt of a retried operation, as recorded in `details.attempts` (src/timing/retry.ts). */
export interface AttemptSummary {
  /** 1-based. */
  attempt: number;
  durationMs: number;
  /** Error code of the attempt, or "ok". */
  outcome: string;
  status?: number;
  message?: string;
}

/** Facts any error may carry, whatever its code. */
export interface CommonDetails {
  /** Every attempt of a retried operation. */
  attempts?: readonly AttemptSummary[];
  /** The provider the failure came from ("glm", "kimi", "custom"). */
  provider?: string;
  /** HTTP status of the provider response. */
  status?: number;
  /** Where it happened: a timeout layer, or "shim" for the shim's own errors. */
  layer?: string;
  /** The daemon the shim talked to ("unix:/…/daemon.sock"). */
  daemon_url?: string;
  /** Machine-readable reason ("daemon_gone", "daemon_unreachable", …). */
  reason?: string;
}

/** One invalid setting of a CONFIG_INVALID. */
export interface ConfigProblem {
  variables: string[];
  message: string;
}

/**
 * The machine-readable facts of each error code (SPEC §6.7), on top of CommonDetails. Constructing
 * an error with a missing required fact or an unknown one is a compile error.
 */
export interface DetailsByCode {
  TIMEOUT: {
    layer: TimeoutLayer;
    /** The budget that ran out, seconds. */
    budget_s: number;
    /**
     * How late the deadline's timer fired past the deadline, ms (event-loop delay: a busy or
     * starved process); set when the deadline's own timer ended the wait.
     */
    late_ms?: number;
  };
  CANCELLED: Record<never, never>;
  OVER_CAPACITY: {
    /** The kind of cap: "global", "provider", "tool", "session". */
    cap: string;
    cap_name?: string;
    inflight?: number;
    limit?: number;
  };
  DUPLICATE: { original_request_id: string };
  RATE_LIMITED: {
    model?: string;
    /** The provider's business code (Z.ai: 1302, 1303…). */
    provider_code?: string | number;
  };
  PROVIDER_ERROR: {
    model?: string;
    /** The variable that bounds what failed (EXAI_MAX_STREAM_CHARS…). */
    variable?: string;
    cap_chars?: number;
    cap_bytes?: number;
    rounds?: number;
    provider_code?: string | number;
  };
  NO_PROVIDER: { variables?: string[]; model?: string };
  MODEL_NOT_FOUND: { model?: string; field?: string };
  INVALID_ARGUMENT: {
    /** The argument (or CLI option) at fault. */
    field?: string;
    /** The value given, when it helps (a git ref, a repeated model entry). */
    value?: unknown;
    variable?: string;
    tool?: string;
    /** The path argument as given (not necessarily a string when it is the fault). */
    path?: unknown;
    /** What the path is when that is the fault ("directory", "special"). */
    kind?: string;
    /** The file does not exist. */
    missing?: boolean;
    max_turns?: number;
    turns?: number;
    limit?: number;
    bytes?: number;
    frame_bytes?: number;
    limit_bytes?: number;
    close_code?: number;
    daemon_code?: string;
  };
  FILE_ACCESS_DENIED: {
    field?: string;
    path?: string;
    resolved_path?: string;
    allowed_roots?: string[];
    /** The sandbox rule that refused it (`*.pem`, "outside the allowed roots"…). */
    rule?: string;
    /** What looked secret: the file's name or its content. */
    secret?: "name" | "content";
    /** What the path is when that is the reason ("directory"). */
    kind?: string;
    /** The file does not exist. */
    missing?: boolean;
  };
  CONFIG_INVALID: {
    /** Every variable at fault. */
    variables: string[];
    problems?: ConfigProblem[];
    path?: string;
    variable?: string;
    value?: unknown;
    data_dir?: string;
    unknown?: string[];
  };
  INTERNAL: {
    /** The OS or SQLite error code of an environment fault (ENOSPC, SQLITE_FULL…). */
    os_error?: string;
    /** True for an environment fault (not a bug). */
    environment?: boolean;
    path?: string;
    field?: string;
  };
}

type UnionToIntersection<U> = (U extends unknown ? (x: U) => void : never) extends (x: infer I) => void
  ? I
  : never;

/** What a reader of an error of any code may find: every fact of every code, all optional. */
export type AnyDetails = CommonDetails &
  Partial<Omit<UnionToIntersection<DetailsByCode[ErrorCode]>, keyof CommonDetails>>;

/**
 * The details of an error of code `C`: exactly that code's facts when `C` is one code (so a wrong
 * or missing fact does not compile), any code's facts when the code is not known statically.
 */
export type ErrorDetails<C extends ErrorCode = ErrorCode> = [ErrorCode] extends [C]
  ? AnyDetails
  : C extends ErrorCode
    ? DetailsByCode[C] & CommonDetails
    : never;

export interface ExaiErrorOptions<C extends ErrorCode = ErrorCode> {
  cause?: unknown;
  /** True when the same request may succeed if tried again (after `retryAfterS`). */
  retryable?: boolean;
  /** Seconds the caller should wait before trying again (OVER_CAPACITY, RATE_LIMITED). */
  retryAfterS?: number;
  /** Extra machine-readable facts, typed per code (DetailsByCode). */
  details?: ErrorDetails<C>;
}

/** The options argument: required (with its details) when the code has required facts. */
type OptionsArgument<C extends ErrorCode> = [ErrorCode] extends [C]
  ? [options?: ExaiErrorOptions<C>]
  : C extends ErrorCode
    ? Record<never, never> extends DetailsByCode[C]
      ? [options?: ExaiErrorOptions<C>]
      : [options: ExaiErrorOptions<C> & { details: ErrorDetails<C> }]
    : never;

const BRAND = Symbol.for("exai.error");

class ExaiErrorClass extends Error {
  readonly code: ErrorCode;
  readonly retryable: boolean;
  readonly retryAfterS: number | undefined;
  /** Machine-readable facts; what each code carries is DetailsByCode. */
  readonly details: AnyDetails;
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

/** The one error type of exai: a stable code, a message for the user, typed details. */
export type ExaiError = ExaiErrorClass;

/** The constructor: the details argument is checked against the code's DetailsByCode entry. */
export interface ExaiErrorConstructor {
  new <C extends ErrorCode>(code: C, message: string, ...options: OptionsArgument<C>): ExaiError;
  /** Brand check that survives two copies of this module (e.g. dist and src in one test run). */
  is(value: unknown): value is ExaiError;
  readonly prototype: ExaiError;
}

export const ExaiError: ExaiErrorConstructor = ExaiErrorClass as unknown as ExaiErrorConstructor;

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
  details: Omit<ErrorDetails<"INVALID_ARGUMENT">, "field"> = {},
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
