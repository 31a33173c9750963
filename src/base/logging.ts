/**
 * Logging (SPEC §6.6): pino, JSON lines to stderr and to EXAI_DATA_DIR/logs/exai.log — never to
 * stdout, which belongs to the MCP protocol in stdio mode.
 */
import { dirname, join } from "node:path";
import pino, { type Logger } from "pino";
import type { ExaiError } from "./errors.js";
import { dataDirFault, ensureDataDir, explainMkdirError } from "./data-dir.js";

export type { Logger };

const LEVELS = ["trace", "debug", "info", "warn", "error", "fatal", "silent"];

export interface LoggerOptions {
  level: string;
  /** Directory for exai.log; omitted = stderr only. */
  logDir?: string;
  /** Extra fields on every line (e.g. {mode: "daemon"}). */
  base?: Record<string, unknown>;
  /** Applied to every finished line before it is written: removes configured secrets (./redact.ts). */
  redact?: (line: string) => string;
  /** EXAI_DATA_DIR, named in the report when the log file cannot be written (default: logDir). */
  dataDir?: string;
}

/** Unwritten bytes one log file may hold in memory before lines are dropped (e.g. on a full disk). */
export const LOG_BUFFER_BYTES = 4 * 1024 * 1024;

/** An append-only log file that cannot crash the process; see `openLogFile`. */
export interface LogFile {
  /** Appends text (buffered); dropped silently once the file has failed. */
  write(text: string): boolean;
  /** Flushes and closes; resolves even when the file failed. */
  end(): Promise<void>;
  /** True once a write or the open failed. */
  readonly failed: boolean;
}

/**
 * Opens `path` for appending through sonic-boom (as pino does; one open file, asynchronous writes).
 * A failure (ENOSPC, EROFS, EACCES…, at open or at any write) never becomes an unhandled 'error':
 * `onFault` is called once with a CONFIG_INVALID error naming EXAI_DATA_DIR, the OS error and the
 * fix, and later writes are dropped (restart exai once the cause is fixed). At most
 * LOG_BUFFER_BYTES wait in memory; lines beyond are dropped.
 */
export function openLogFile(
  path: string,
  options: { dataDir: string; what: string; onFault: (fault: ExaiError) => void },
): LogFile {
  let failed = false;
  const stream = pino.destination({
    dest: path,
    mkdir: true,
    sync: false,
    maxLength: LOG_BUFFER_BYTES,
  });
  stream.on("error", (error: unknown) => {
    if (failed) return;
    failed = true;
    // sonic-boom retries a failed synchronous flush forever (every 100 ms), and pino flushes every
    // destination synchronously at exit: a full disk would hang the exit. Drop what is buffered.
    stream.flushSync = () => undefined;
    if ((stream as unknown as { fd: number }).fd >= 0) stream.destroy();
    options.onFault(
      dataDirFault(
        explainMkdirError(dirname(path), error),
        options.dataDir,
        `cannot write ${options.what} ${path}`,
        `the server keeps serving without it; restart exai once this is fixed`,
      ),
    );
  });
  return {
    get failed() {
      return failed;
    },
    write(text) {
      if (failed) return true;
      try {
        return stream.write(text);
      } catch {
        // Written after end() (a late log line during shutdown): nothing to write to any more.
        return true;
      }
    },
    end() {
      if (failed) return Promise.resolve();
      return new Promise<void>((resolve) => {
        const done = () => resolve();
        stream.once("close", done);
        stream.once("error", done);
        try {
          stream.end();
        } catch {
          resolve();
        }
      });
    },
  };
}

/** Creates the process logger. Secrets never reach it: tokens and keys are not passed to log calls. */
export function createLogger(options: LoggerOptions): Logger {
  // With a log file, stderr carries warnings and errors only (MCP clients show a server's stderr, and
  // a line per call there costs the user's attention and a second write per call); the file gets
  // everything at the configured level. Without a file, stderr gets everything.
  const quietStderr = options.logDir !== undefined && LEVELS.indexOf(options.level) < LEVELS.indexOf("warn");
  const stderr = pino.destination({ dest: 2, sync: false });
  // stderr closed by the client (EPIPE): there is nowhere left to report anything; keep serving.
  stderr.on("error", () => undefined);
  const streams: pino.StreamEntry[] = [
    { level: (quietStderr ? "warn" : options.level) as pino.Level, stream: stderr },
  ];
  // Faults of the log file are reported on stderr once; the logger exists by the time they arrive.
  const faults: ExaiError[] = [];
  let report: (fault: ExaiError) => void = (fault) => {
    faults.push(fault);
  };
  if (options.logDir && options.level !== "silent") {
    const dataDir = options.dataDir ?? options.logDir;
    const fault = ensureDataDir(options.logDir, dataDir);
    if (fault) faults.push(fault);
    else {
      const file = openLogFile(join(options.logDir, "exai.log"), {
        dataDir,
        what: "the log file",
        onFault: (failure) => report(failure),
      });
      streams.push({
        level: options.level as pino.Level,
        stream: { write: (line: string) => file.write(line) },
      });
    }
  }
  const logger = pino(
    {
      level: options.level,
      base: { pid: process.pid, ...(options.base ?? {}) },
      redact: {
        paths: ["token", "apiKey", "*.token", "*.apiKey", "headers.authorization"],
        censor: "[redacted]",
      },
      ...(options.redact ? { hooks: { streamWrite: options.redact } } : {}),
    },
    pino.multistream(streams),
  );
  report = (fault) => logger.error({ code: fault.code, ...fault.details }, fault.message);
  for (const fault of faults.splice(0)) report(fault);
  return logger;
}
