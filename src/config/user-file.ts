/**
 * The user-level configuration file (SPEC §3): where it is looked for (`EXAI_ENV_FILE`, else
 * `$XDG_CONFIG_HOME/exai/.env`, else `~/.config/exai/.env`), how it is read safely, and the
 * warning source for a project `.env` that looks like exai configuration (it is never read).
 */
import { createHash } from "node:crypto";
import { closeSync, constants, fstatSync, openSync, readSync } from "node:fs";
import { homedir } from "node:os";
import { isAbsolute, join, resolve } from "node:path";
import { parse as parseDotenv } from "dotenv";
import { ExaiError } from "../base/errors.js";
import type { ConfigSource, LoadConfigOptions } from "./types.js";
import { VARIABLES, type RawEnvironment } from "./variables.js";

/** Largest user-level configuration file read, bytes. */
export const MAX_ENV_FILE_BYTES = 1024 * 1024;

/**
 * Names that make a project's `.env` look like exai configuration: every exai variable except the
 * generic ones most web projects set for themselves (a warning for those would be noise).
 */
const EXAI_VARIABLES = new Set<string>(
  VARIABLES.map((spec) => spec.name).filter((name) => name !== "DATABASE_URL" && name !== "REDIS_URL"),
);

/** The home directory: `HOME` of `env` when set, else the OS's. */
export function homeOf(env: RawEnvironment): string {
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

/** The user-level file's variables and where they came from; see `loadConfig`. */
export function readSources(options: LoadConfigOptions): { fileEnv: RawEnvironment; source: ConfigSource } {
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
