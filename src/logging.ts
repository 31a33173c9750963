/**
 * Logging (SPEC §6.6): pino, JSON lines to stderr and to EXAI_DATA_DIR/logs/exai.log — never to
 * stdout, which belongs to the MCP protocol in stdio mode.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import pino, { type Logger } from "pino";

export type { Logger };

const LEVELS = ["trace", "debug", "info", "warn", "error", "fatal", "silent"];

export interface LoggerOptions {
  level: string;
  /** Directory for exai.log; omitted = stderr only. */
  logDir?: string;
  /** Extra fields on every line (e.g. {mode: "daemon"}). */
  base?: Record<string, unknown>;
  /** Applied to every finished line before it is written: removes configured secrets (src/redact.ts). */
  redact?: (line: string) => string;
}

/** Creates the process logger. Secrets never reach it: tokens and keys are not passed to log calls. */
export function createLogger(options: LoggerOptions): Logger {
  // With a log file, stderr carries warnings and errors only (MCP clients show a server's stderr, and
  // a line per call there costs the user's attention and a second write per call); the file gets
  // everything at the configured level. Without a file, stderr gets everything.
  const quietStderr = options.logDir !== undefined && LEVELS.indexOf(options.level) < LEVELS.indexOf("warn");
  const streams: pino.StreamEntry[] = [
    {
      level: (quietStderr ? "warn" : options.level) as pino.Level,
      stream: pino.destination({ dest: 2, sync: false }),
    },
  ];
  if (options.logDir && options.level !== "silent") {
    mkdirSync(options.logDir, { recursive: true, mode: 0o700 });
    streams.push({
      level: options.level as pino.Level,
      stream: pino.destination({ dest: join(options.logDir, "exai.log"), mkdir: true, sync: false }),
    });
  }
  return pino(
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
}
