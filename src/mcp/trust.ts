/**
 * Who may use a daemon (SPEC §7): the files in EXAI_DATA_DIR that make the shim ↔ daemon link
 * authenticated by the OS user, and the generated TCP token.
 *
 * - `EXAI_DATA_DIR` is a directory owned by the user with mode 0700: no other uid can enter it, so
 *   no other uid can connect to (or plant) `daemon.sock` inside it.
 * - `daemon.sock`: the daemon's Unix socket. A leftover socket is removed only when it is ours and
 *   nothing answers on it.
 * - `daemon.token`: the TCP token generated at first start when EXAI_WS_TOKEN is unset (32 random
 *   bytes, base64url, mode 0600, written atomically; an existing one is reused).
 */
import { randomBytes } from "node:crypto";
import {
  chmodSync,
  linkSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  unlinkSync,
  writeFileSync,
  type Stats,
} from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import { ExaiError } from "../base/errors.js";
import { SOCKET_FILE, TOKEN_FILE } from "./frames.js";

/** Longest Unix socket path the kernel accepts (sun_path, minus the terminating NUL), bytes. */
const MAX_SOCKET_PATH_BYTES = 107;

const uid = (): number | undefined => process.getuid?.();

const dataDirError = (dataDir: string, problem: string, cause?: unknown) =>
  new ExaiError(
    "CONFIG_INVALID",
    `EXAI_DATA_DIR ${dataDir} ${problem}; point EXAI_DATA_DIR at a directory of your own (mode 0700), e.g. ~/.exai`,
    { ...(cause !== undefined ? { cause } : {}), details: { variables: ["EXAI_DATA_DIR"] } },
  );

/** Why `stats` (of the data directory) is not a private directory of this user, or undefined. */
function privateDirProblem(stats: Stats): string | undefined {
  if (stats.isSymbolicLink()) return "is a symbolic link";
  if (!stats.isDirectory()) return "is not a directory";
  const me = uid();
  if (me !== undefined && stats.uid !== me) return `is owned by uid ${stats.uid}, not by you (uid ${me})`;
  if ((stats.mode & 0o077) !== 0)
    return `is accessible to group/other (mode ${(stats.mode & 0o777).toString(8).padStart(4, "0")})`;
  return undefined;
}

/**
 * Creates EXAI_DATA_DIR (mode 0700) when missing and makes sure it is the user's private
 * directory: owned by the user, not a symlink; a group/other-accessible mode is narrowed to 0700.
 * @throws ExaiError CONFIG_INVALID naming EXAI_DATA_DIR when it belongs to another uid, is not a
 *   directory, or cannot be created (the OS error is in the message).
 */
export function ensurePrivateDataDir(dataDir: string): void {
  try {
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  } catch (error) {
    throw dataDirError(
      dataDir,
      `could not be created (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`,
      error,
    );
  }
  const stats = lstatSync(dataDir);
  const problem = privateDirProblem(stats);
  if (problem === undefined) return;
  if (stats.isDirectory() && !stats.isSymbolicLink() && stats.uid === uid()) {
    chmodSync(dataDir, 0o700);
    return;
  }
  throw dataDirError(dataDir, problem);
}

/**
 * The daemon's socket path inside `dataDir`.
 * @throws ExaiError CONFIG_INVALID naming EXAI_DATA_DIR when the path is too long for a socket or contains ':'.
 */
export function socketPath(dataDir: string): string {
  const path = join(dataDir, SOCKET_FILE);
  if (path.includes(":")) {
    // ws+unix: URLs separate the socket path from the request path with ':'.
    throw dataDirError(dataDir, "contains ':', which a Unix socket URL cannot carry");
  }
  if (Buffer.byteLength(path) > MAX_SOCKET_PATH_BYTES) {
    throw dataDirError(
      dataDir,
      `is too deep for the daemon's Unix socket (${path} is ${Buffer.byteLength(path)} bytes; the limit is ${MAX_SOCKET_PATH_BYTES})`,
    );
  }
  return path;
}

/** What the shim found at EXAI_DATA_DIR/daemon.sock. */
export type SocketCheck =
  | { kind: "ok"; path: string }
  /** No socket (no daemon yet): the shim may start one. */
  | { kind: "missing"; path: string }
  /** Something is there that is not provably the user's own daemon: send nothing to it. */
  | { kind: "unverified"; path: string; reason: string };

/**
 * Checks, before anything is sent, that `EXAI_DATA_DIR/daemon.sock` can only be the user's own
 * daemon: the directory is owned by this uid and closed to group/other, and the socket file is a
 * socket owned by this uid. Never throws.
 */
export function verifyDaemonSocket(dataDir: string): SocketCheck {
  const path = join(dataDir, SOCKET_FILE);
  let dirStats: Stats;
  try {
    dirStats = lstatSync(dataDir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return { kind: "missing", path };
    return { kind: "unverified", path, reason: `EXAI_DATA_DIR ${dataDir}: ${(error as Error).message}` };
  }
  const dirProblem = privateDirProblem(dirStats);
  if (dirProblem !== undefined)
    return { kind: "unverified", path, reason: `EXAI_DATA_DIR ${dataDir} ${dirProblem}` };
  let stats: Stats;
  try {
    stats = lstatSync(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return { kind: "missing", path };
    return { kind: "unverified", path, reason: `${path}: ${(error as Error).message}` };
  }
  if (!stats.isSocket()) return { kind: "unverified", path, reason: `${path} is not a socket` };
  const me = uid();
  if (me !== undefined && stats.uid !== me)
    return {
      kind: "unverified",
      path,
      reason: `${path} is owned by uid ${stats.uid}, not by you (uid ${me})`,
    };
  return { kind: "ok", path };
}

/** Resolves true when something accepts a connection on the Unix socket `path` within `timeoutMs`. */
export function socketAnswers(path: string, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(path);
    const done = (answer: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(answer);
    };
    const timer = setTimeout(() => done(true), timeoutMs); // accepted but silent still counts as alive
    timer.unref();
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}

/**
 * Makes `path` free for the daemon to listen on: removes a leftover socket of this user that no
 * process answers on.
 * @throws ExaiError CONFIG_INVALID when another daemon answers on it, or when it is not a socket
 *   of this user (nothing is removed then).
 */
export async function clearStaleSocket(path: string): Promise<void> {
  let stats: Stats;
  try {
    stats = lstatSync(path);
  } catch {
    // Nothing there: free.
    return;
  }
  const me = uid();
  if (!stats.isSocket() || (me !== undefined && stats.uid !== me)) {
    throw new ExaiError(
      "CONFIG_INVALID",
      `${path} exists and is not a socket of yours; remove it (or set EXAI_DATA_DIR to another directory) and start the daemon again`,
      { details: { variables: ["EXAI_DATA_DIR"] } },
    );
  }
  if (await socketAnswers(path)) {
    throw new ExaiError(
      "CONFIG_INVALID",
      `another exai daemon already serves ${path}; stop it first (or use another EXAI_DATA_DIR)`,
      { details: { variables: ["EXAI_DATA_DIR"], reason: "daemon_running" } },
    );
  }
  unlinkSync(path);
}

/**
 * The TCP token of a daemon whose EXAI_WS_TOKEN is unset: reads `EXAI_DATA_DIR/daemon.token`, or
 * generates it (32 random bytes, base64url) and writes it atomically with mode 0600. Two daemons
 * starting at once agree on one token (the file is linked into place, never overwritten).
 * @throws ExaiError CONFIG_INVALID naming the file when it cannot be read or written, or when it is
 *   not a private file of this user.
 */
export function loadOrCreateToken(dataDir: string): string {
  const path = join(dataDir, TOKEN_FILE);
  const read = (): string | undefined => {
    let stats: Stats;
    try {
      stats = lstatSync(path);
    } catch {
      // Not there yet: generated below.
      return undefined;
    }
    const me = uid();
    if (!stats.isFile() || (me !== undefined && stats.uid !== me)) {
      throw new ExaiError(
        "CONFIG_INVALID",
        `${path} is not a regular file of yours; remove it so the daemon generates a new token (or set EXAI_WS_TOKEN)`,
        { details: { variables: ["EXAI_WS_TOKEN", "EXAI_DATA_DIR"] } },
      );
    }
    if ((stats.mode & 0o077) !== 0) chmodSync(path, 0o600);
    const token = readFileSync(path, "utf8").trim();
    return token.length >= 16 ? token : undefined;
  };
  const existing = read();
  if (existing !== undefined) return existing;
  const token = randomBytes(32).toString("base64url");
  const temporary = `${path}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
  try {
    writeFileSync(temporary, `${token}\n`, { mode: 0o600, flag: "wx" });
    try {
      linkSync(temporary, path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      // Another daemon won the race (or an unreadable short token is there): use what is in place.
      const theirs = read();
      if (theirs !== undefined) return theirs;
      unlinkSync(path);
      linkSync(temporary, path);
    }
    return token;
  } catch (error) {
    if (error instanceof ExaiError) throw error;
    throw new ExaiError(
      "CONFIG_INVALID",
      `could not write the daemon token ${path} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}); check EXAI_DATA_DIR, or set EXAI_WS_TOKEN`,
      { cause: error, details: { variables: ["EXAI_DATA_DIR", "EXAI_WS_TOKEN"] } },
    );
  } finally {
    try {
      unlinkSync(temporary);
    } catch {
      // Already gone (never written): nothing to clean up.
    }
  }
}

/** The TCP token of a daemon (EXAI_WS_TOKEN or the generated file), or undefined when EXAI_WS_TOKEN=off. */
export function resolveTcpToken(config: {
  dataDir: string;
  daemon: { token?: string; tokenMode?: "set" | "generate" | "off" };
}): string | undefined {
  if (config.daemon.tokenMode === "off") return undefined;
  if (config.daemon.token !== undefined) return config.daemon.token;
  return loadOrCreateToken(config.dataDir);
}
