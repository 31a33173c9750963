/**
 * Faults of EXAI_DATA_DIR (a full disk, a read-only or missing directory, wrong permissions) are
 * environment faults, not bugs: they are reported naming EXAI_DATA_DIR, the path, the OS error and
 * what to do, and the server keeps serving what needs no storage.
 */
import { mkdirSync, rmdirSync, statSync } from "node:fs";
import { dirname } from "node:path";
import { ExaiError, environmentFault } from "./errors.js";

/**
 * The error for an unusable data directory: CONFIG_INVALID naming EXAI_DATA_DIR, what failed
 * (`action`, e.g. "cannot write the log file"), the OS or SQLite error code, the path and the fix;
 * `consequence` says what still works.
 */
export function dataDirFault(error: unknown, dataDir: string, action: string, consequence = ""): ExaiError {
  const where = `EXAI_DATA_DIR=${dataDir}: ${action}`;
  const mapped = environmentFault(error, where);
  const code = (error as { code?: unknown } | null)?.code;
  const path = (error as { path?: unknown } | null)?.path;
  const message =
    mapped?.message ??
    `${where}: ${typeof code === "string" ? code : error instanceof Error ? error.message : String(error)}; ` +
      `check that EXAI_DATA_DIR is a directory the user running exai can write`;
  return new ExaiError("CONFIG_INVALID", consequence ? `${message}; ${consequence}` : message, {
    cause: error,
    details: {
      variables: ["EXAI_DATA_DIR"],
      data_dir: dataDir,
      ...(typeof code === "string" ? { os_error: code } : {}),
      ...(typeof path === "string" ? { path } : {}),
    },
  });
}

/**
 * Creates `path` (and parents, mode 0700) when missing.
 * @returns undefined on success, else the fault (see `dataDirFault`) — never throws.
 */
export function ensureDataDir(path: string, dataDir: string): ExaiError | undefined {
  try {
    mkdirSync(path, { recursive: true, mode: 0o700 });
    return undefined;
  } catch (error) {
    return dataDirFault(explainMkdirError(path, error), dataDir, `cannot create ${path}`);
  }
}

/**
 * Node's recursive mkdir reports ENOENT or EEXIST where the real cause is a read-only file system,
 * a permission or a file in the way: find the deepest existing ancestor and retry the first missing
 * step alone to get the OS's own error (ENOTDIR when the ancestor is not a directory).
 */
export function explainMkdirError(path: string, error: unknown): unknown {
  const code = (error as { code?: unknown } | null)?.code;
  if (code !== "ENOENT" && code !== "EEXIST") return error;
  let child = path;
  let parent = dirname(path);
  for (;;) {
    try {
      const stat = statSync(child);
      if (stat.isDirectory()) return error;
      return Object.assign(new Error(`ENOTDIR: not a directory, mkdir '${path}'`), {
        code: "ENOTDIR",
        syscall: "mkdir",
        path: child,
      });
    } catch (statError) {
      if ((statError as NodeJS.ErrnoException).code !== "ENOENT" || parent === child) return error;
    }
    try {
      statSync(parent);
      break;
    } catch {
      if (dirname(parent) === parent) return error;
      child = parent;
      parent = dirname(parent);
    }
  }
  try {
    mkdirSync(child, { mode: 0o700 });
    rmdirSync(child); // created after all (a race): the original error stands
    return error;
  } catch (real) {
    return real;
  }
}
