/**
 * The process environment. src/config is the only folder that reads `process.env` (lint-enforced):
 * the rest of the product receives it from here, to pass to `loadConfig` or to a child process.
 */
import type { RawEnvironment } from "./variables.js";

/** The live process environment (not a copy: later changes by the process are visible). */
export function processEnvironment(): RawEnvironment {
  return process.env;
}
