/**
 * The one way exai reads a file (SPEC §4.4), for every purpose: `files`, `relevant_files`,
 * directory expansion, nested `.gitignore` files, `images` and uploads.
 *
 * A path is resolved and checked (absolute, inside the roots, not a secret by name), then opened
 * once with O_NOFOLLOW | O_NONBLOCK (a final symlink is never followed and a FIFO never blocks a
 * thread of the pool), and everything else is checked on the opened descriptor: it is a regular
 * file, it is the file at the checked symlink-free path inside the roots (the kernel's path of
 * the descriptor on Linux; device and inode elsewhere), and its size is within the purpose's
 * limit. The content is then read from that same descriptor, at most `maxBytes + 1` bytes
 * whatever the file claims (a growing file, or a `/proc` file whose size reads 0), checking the
 * signal between chunks.
 */
import { constants, type Stats } from "node:fs";
import { lstat, open, readlink, realpath, type FileHandle } from "node:fs/promises";
import path from "node:path";

import { ExaiError, invalidArgument } from "../base/errors.js";
import { errorCode, isInsideRoot, resolveSandboxed, secretError } from "./sandbox.js";

/** What a file is read for; each purpose has its own size limit, chosen by the caller. */
export type ReadPurpose = "file" | "image" | "gitignore" | "upload";

export interface OpenSandboxedOptions {
  /** What the bytes are for: decides whether the private-key check applies (not for .gitignore). */
  purpose: ReadPurpose;
  /** Allowed roots: absolute, symlink-free directories (a FileSandbox's `allowedRoots`). */
  roots: readonly string[];
  /** Most bytes read; a larger file is reported as `tooLarge` without being read. */
  maxBytes: number;
  /** The argument named in errors, e.g. "images[0]". */
  field: string;
  signal?: AbortSignal;
  /** When true a missing path resolves to `undefined` instead of INVALID_ARGUMENT (`.gitignore`). */
  optional?: boolean;
}

export interface SandboxedFile {
  /** Realpath of the file read. */
  path: string;
  /** Bytes read, or, when `tooLarge`, the size the file reports (at least `maxBytes + 1`). */
  size: number;
  /** The content, absent when the file is over `maxBytes`. */
  content?: Buffer;
  /** True when the file is larger than `maxBytes`; nothing of it was kept. */
  tooLarge: boolean;
}

/** Largest single read() from the descriptor, bytes. */
const CHUNK_BYTES = 1024 * 1024;
/** Read-only, never through a final symlink, never blocking on a FIFO, never a controlling tty. */
const OPEN_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK | constants.O_NOCTTY;
/** How many times a path swapped while it was being opened is resolved again before giving up. */
const OPEN_ATTEMPTS = 3;

/**
 * Opens `input` inside `options.roots` and reads it, as described in the module comment.
 * @returns the file's realpath and content (or `tooLarge` with its size); `undefined` only when
 *   `optional` is set and the path does not exist.
 * @throws ExaiError INVALID_ARGUMENT (not an absolute path, missing, a directory, a FIFO/device/
 *   socket, unreadable) and FILE_ACCESS_DENIED (outside the roots, a secret by name or — except
 *   for `.gitignore` — by content, a kernel pseudo-file, changed while it was opened, permission
 *   denied); every error names `field` and the path in its message and `details`. The signal's
 *   reason when aborted.
 */
export async function openSandboxed(
  input: string,
  options: OpenSandboxedOptions,
): Promise<SandboxedFile | undefined> {
  const { field, signal } = options;
  for (let attempt = 1; ; attempt++) {
    signal?.throwIfAborted();
    let real: string;
    try {
      real = await resolveSandboxed(options.roots, input, field);
    } catch (error) {
      if (options.optional && ExaiError.is(error) && error.details?.missing === true) return undefined;
      throw error;
    }
    let handle: FileHandle;
    try {
      handle = await open(real, OPEN_FLAGS);
    } catch (error) {
      const code = errorCode(error);
      // ELOOP: the last component became a symlink after it was resolved; resolve it again.
      if ((code === "ELOOP" || code === "ENOENT") && attempt < OPEN_ATTEMPTS) continue;
      if (options.optional && (code === "ENOENT" || code === "ENOTDIR")) return undefined;
      throw fileSystemError(error, field, input, real);
    }
    try {
      const info = await handle.stat();
      checkRegular(info, field, input, real);
      if (!(await sameFileInsideRoots(handle, info, real, options.roots))) {
        if (attempt < OPEN_ATTEMPTS) continue;
        throw new ExaiError(
          "FILE_ACCESS_DENIED",
          `${field}: ${JSON.stringify(input)} changed while it was being opened (a symlink or directory ` +
            `on its path was replaced); it was not read. Pass the path again once it is stable.`,
          { details: { field, path: input } },
        );
      }
      if (info.size > options.maxBytes) return { path: real, size: info.size, tooLarge: true };
      const content = await readBounded(handle, options.maxBytes, signal);
      if (content === undefined) {
        return { path: real, size: Math.max(info.size, options.maxBytes + 1), tooLarge: true };
      }
      if (options.purpose !== "gitignore" && holdsPrivateKey(content)) {
        throw secretError(
          field,
          input,
          "holds a private key block (-----BEGIN … PRIVATE KEY-----)",
          real,
          "content",
        );
      }
      return { path: real, size: content.length, content, tooLarge: false };
    } finally {
      await handle.close();
    }
  }
}

/**
 * Whether `content` holds a PEM/OpenSSH/PGP private-key header: `-----BEGIN <words> PRIVATE
 * KEY-----` (`RSA`, `EC`, `DSA`, `OPENSSH`, `ENCRYPTED`, none…) or `-----BEGIN PGP PRIVATE KEY BLOCK-----`.
 */
export function holdsPrivateKey(content: Buffer): boolean {
  const marker = "-----BEGIN ";
  for (let index = content.indexOf(marker); index !== -1; index = content.indexOf(marker, index + 1)) {
    const header = content.toString("latin1", index, index + 80);
    if (PRIVATE_KEY_HEADER.test(header)) return true;
  }
  return false;
}

const PRIVATE_KEY_HEADER = /^-----BEGIN [A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----/;

function checkRegular(info: Stats, field: string, input: string, real: string): void {
  if (info.isFile()) return;
  if (info.isDirectory()) {
    throw invalidArgument(field, `${JSON.stringify(input)} is a directory; pass a file`, {
      path: input,
      kind: "directory",
    });
  }
  const kind = info.isFIFO()
    ? "a FIFO (named pipe)"
    : info.isCharacterDevice() || info.isBlockDevice()
      ? "a device"
      : info.isSocket()
        ? "a socket"
        : "not a regular file";
  const where = real === input ? "" : ` (resolves to ${real})`;
  throw invalidArgument(field, `${JSON.stringify(input)}${where} is ${kind}; only regular files are read`, {
    path: input,
    kind: "special",
  });
}

/**
 * Whether the opened file is the file at `real` (a realpath inside the roots, already checked).
 *
 * On Linux the kernel's own record of the descriptor's path (`/proc/self/fd/N`) is compared:
 * it names the file that was actually opened, whatever was swapped on the way, so the check has
 * no window of its own. Elsewhere (or without /proc) the path is resolved again around an lstat
 * and the device and inode compared: a directory on the path swapped for a symlink between
 * resolving and opening shows as a different inode or a different realpath.
 */
async function sameFileInsideRoots(
  handle: FileHandle,
  info: Stats,
  real: string,
  roots: readonly string[],
): Promise<boolean> {
  if (!roots.some((root) => isInsideRoot(real, root))) return false;
  const opened = await descriptorPath(handle);
  if (opened !== undefined) return opened === real;
  try {
    const directory = path.dirname(real);
    if ((await realpath(directory)) !== directory) return false;
    const found = await lstat(real);
    if ((await realpath(directory)) !== directory) return false;
    return !found.isSymbolicLink() && found.dev === info.dev && found.ino === info.ino;
  } catch {
    // Its directory or the file is gone or unreadable now: it is not the file that was checked.
    return false;
  }
}

/** The path the kernel records for an open descriptor (Linux /proc), or undefined when unknown. */
async function descriptorPath(handle: FileHandle): Promise<string | undefined> {
  if (process.platform !== "linux") return undefined;
  try {
    return await readlink(`/proc/self/fd/${handle.fd}`);
  } catch {
    // No /proc mounted (some containers): fall back to the path-based check.
    return undefined;
  }
}

/**
 * Reads from the descriptor until end of file, keeping at most `maxBytes`.
 * @returns the content, or undefined when the file holds more than `maxBytes` (read stops there).
 */
async function readBounded(
  handle: FileHandle,
  maxBytes: number,
  signal: AbortSignal | undefined,
): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let total = 0;
  for (;;) {
    signal?.throwIfAborted();
    // One byte past the limit tells "exactly at the limit" from "over it".
    const want = Math.min(CHUNK_BYTES, maxBytes + 1 - total);
    const chunk = Buffer.allocUnsafe(want);
    const { bytesRead } = await handle.read(chunk, 0, want, total);
    if (bytesRead === 0) break;
    total += bytesRead;
    if (total > maxBytes) return undefined;
    chunks.push(bytesRead === want ? chunk : chunk.subarray(0, bytesRead));
  }
  signal?.throwIfAborted();
  return chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, total);
}

/**
 * The error for an OS failure on `input` (the path as the caller gave it; `real` is its resolved
 * path): INVALID_ARGUMENT naming `field` when it is gone or a directory, FILE_ACCESS_DENIED for
 * permissions and a path that kept turning into a symlink. `action` completes "could not be …".
 */
export function fileSystemError(
  error: unknown,
  field: string,
  input: string,
  real: string,
  action: "read" | "opened" = "opened",
): ExaiError {
  const code = errorCode(error);
  const quoted = JSON.stringify(input);
  const details = { field, path: input };
  if (code === "ENOENT" || code === "ENOTDIR") {
    return new ExaiError(
      "INVALID_ARGUMENT",
      `${field}: ${quoted} does not exist (it was removed while reading)`,
      {
        cause: error,
        details,
      },
    );
  }
  if (code === "ELOOP") {
    return new ExaiError(
      "FILE_ACCESS_DENIED",
      `${field}: ${quoted} kept changing into a symlink while it was being opened; it was not read`,
      { cause: error, details },
    );
  }
  if (code === "EACCES" || code === "EPERM") {
    return new ExaiError(
      "FILE_ACCESS_DENIED",
      `${field}: ${quoted} cannot be read: permission denied for the exai server process (${real})`,
      { cause: error, details },
    );
  }
  if (code === "EISDIR") {
    return invalidArgument(field, `${quoted} is a directory; pass a file`, {
      path: input,
      kind: "directory",
    });
  }
  const reason = error instanceof Error ? error.message : String(error);
  return new ExaiError("INVALID_ARGUMENT", `${field}: ${quoted} could not be ${action}: ${reason}`, {
    cause: error,
    details,
  });
}
