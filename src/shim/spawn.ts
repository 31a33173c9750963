/**
 * Starting the shared daemon from a shim: `exai daemon` detached, with a minimal environment (the
 * daemon takes its configuration from the user's configuration file, not from whichever shim
 * started it).
 */
import { spawn } from "node:child_process";
import type { Config } from "../config/load.js";
import type { Logger } from "../base/logging.js";
import { configOrigin } from "../mcp/config-origin.js";
import { now } from "../timing/deadline.js";

/** Variables of the shim's environment a daemon it starts inherits (besides the NODE_* ones). */
const DAEMON_ENV_KEEP = new Set([
  "HOME",
  "PATH",
  "USER",
  "LOGNAME",
  "SHELL",
  "TMPDIR",
  "TZ",
  "LANG",
  "LANGUAGE",
  "XDG_CONFIG_HOME",
  "EXAI_ENV_FILE",
  "SYSTEMROOT",
]);

/**
 * The environment of a daemon the shim starts: HOME, PATH, locale (LANG, LANGUAGE, LC_*),
 * XDG_CONFIG_HOME, EXAI_ENV_FILE, NODE_* and a few process basics from `source`, plus
 * EXAI_DATA_DIR (this shim's, resolved) and EXAI_ENV_FILE = the configuration file this shim read,
 * so the daemon reads the same one. Provider keys and every other exai variable are left out: the
 * daemon takes its configuration from the file, not from whichever shim started it.
 */
export function daemonEnvironment(source: NodeJS.ProcessEnv, config: Config): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(source)) {
    if (value === undefined) continue;
    if (DAEMON_ENV_KEEP.has(name) || name.startsWith("LC_") || name.startsWith("NODE_")) env[name] = value;
  }
  env.EXAI_DATA_DIR = config.dataDir;
  const file = configOrigin(config).file;
  if (file !== undefined) env.EXAI_ENV_FILE = file;
  return env;
}

export interface DaemonStarterOptions {
  config: Config;
  /** dist/cli.js */
  cliPath: string;
  /** The environment the daemon's is derived from (`daemonEnvironment`). */
  sourceEnv: NodeJS.ProcessEnv;
  /** At most one start per this many ms. */
  windowMs: number;
  logger: Logger;
  /** Named in the log line. */
  url: string;
}

/**
 * A function that starts `exai daemon` detached, at most once per `windowMs`; it returns true
 * when it started one. Spawn failures are logged, never thrown.
 */
export function createDaemonStarter(options: DaemonStarterOptions): () => boolean {
  const { config, cliPath, logger } = options;
  let lastSpawnAt = Number.NEGATIVE_INFINITY;
  return () => {
    if (now() - lastSpawnAt < options.windowMs) return false;
    lastSpawnAt = now();
    logger.info({ url: options.url, cli: cliPath }, "no daemon answers; starting `exai daemon`");
    try {
      const child = spawn(process.execPath, [cliPath, "daemon"], {
        // The shim's cwd (the client's project): the daemon's cwd is the sandbox of /mcp clients without roots.
        cwd: config.cwd,
        detached: true,
        stdio: "ignore",
        env: daemonEnvironment(options.sourceEnv, config),
      });
      child.on("error", (error) => logger.warn({ err: error }, "could not start the daemon"));
      child.unref();
    } catch (error) {
      logger.warn({ err: error }, "could not start the daemon");
    }
    return true;
  };
}
