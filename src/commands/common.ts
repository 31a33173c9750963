/**
 * What every `exai` command shares: printing to stdout/stderr, reading the configuration, reporting
 * a failure with its exit code, and the parsers of numeric options.
 */
import { InvalidArgumentError } from "commander";
import { loadConfig, type Config } from "../config/load.js";
import { processEnvironment } from "../config/environment.js";
import { toExaiError } from "../base/errors.js";

/** Writes one line to stdout. */
export const out = (text: string) => process.stdout.write(`${text}\n`);
/** Writes one line to stderr. */
export const err = (text: string) => process.stderr.write(`${text}\n`);

/**
 * Loads the configuration from the real environment and the user-level file. A `.env` in the
 * working directory that sets exai variables is not read; one line on stderr says so.
 */
export function readConfig(): Config {
  const config = loadConfig({ env: processEnvironment(), cwd: process.cwd() });
  const ignored = config.source.ignoredProjectEnv;
  if (ignored) {
    err(
      `exai: ignored ${ignored}: configuration is never read from the working directory (a project could redirect your API keys or widen file access); put exai settings in ${config.source.file ?? config.source.searched} (exai init writes it)`,
    );
  }
  return config;
}

/** Prints an error for a human and sets the exit code (2 for configuration, 1 otherwise). */
export function fail(error: unknown): void {
  const failure = toExaiError(error, "exai");
  err(`exai: ${failure.code}: ${failure.message}`);
  process.exitCode = failure.code === "CONFIG_INVALID" ? 2 : 1;
}

/** Parses a count option: a whole number 0–256 (commander usage error otherwise). */
export function parseCount(value: string): number {
  const count = Number(value);
  if (!Number.isInteger(count) || count < 0 || count > 256)
    throw new InvalidArgumentError("must be a whole number 0–256");
  return count;
}

/** Parses a port option: a whole number 0–65535 (commander usage error otherwise). */
export function parsePort(value: string): number {
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new InvalidArgumentError("must be a port number 0–65535");
  return port;
}
