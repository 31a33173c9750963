/**
 * The file sandbox (SPEC §4.4): every path a user hands to a tool passes through here before a
 * byte of it is read. A path must be absolute, must exist, must resolve (after symlinks) to a
 * place inside one of the allowed roots, and must not be a secret.
 */
import { realpathSync } from "node:fs";
import { realpath } from "node:fs/promises";
import path from "node:path";

import { ExaiError, invalidArgument } from "../base/errors.js";

export interface FileSandboxOptions {
  /** Absolute directories; each is resolved with realpath at creation when it exists. */
  allowedRoots: string[];
}

export interface FileSandbox {
  /** The roots, absolute and symlink-free where they exist, de-duplicated, in the given order. */
  readonly allowedRoots: readonly string[];
  /**
   * Validates one user-supplied path and returns its realpath.
   * `field` is the argument name used in messages, e.g. "relevant_files[2]".
   * @throws ExaiError INVALID_ARGUMENT when the path is not a non-empty absolute string or does not
   *   exist; FILE_ACCESS_DENIED when it resolves outside every allowed root, is a secret, or
   *   cannot be resolved for lack of permission. Every error carries `details: {field, path}`.
   */
  resolve(path: string, field: string): Promise<string>;
  /** A copy of this sandbox with other roots (e.g. the MCP client's roots). Same rules as creation. */
  withRoots(roots: string[]): FileSandbox;
}

const EXAMPLE_PATH = "/home/me/project/src/a.ts";

/** Basenames refused exactly (compared lower-case). */
const SECRET_NAMES = [".npmrc", ".pypirc", ".netrc", ".git-credentials", ".pgpass", "credentials.json"];
/** Basename prefixes refused (`.env`, `.env.local`, `id_rsa.pub`, …). */
const SECRET_PREFIXES = [".env", "id_rsa", "id_dsa", "id_ecdsa", "id_ed25519"];
/** Basename suffixes refused (private keys, certificates and key stores). */
const SECRET_SUFFIXES = [".pem", ".key", ".p12", ".pfx", ".keystore", ".jks"];
/** Trailing path segments refused (credential files known by their directory). */
const SECRET_PATH_SUFFIXES = [".aws/credentials", ".docker/config.json", ".kube/config"];
/** Directories whose whole content is refused (and the directory itself). */
const SECRET_DIRECTORIES = [".git", ".ssh", ".gnupg"];
/** Kernel pseudo-file systems: process environments (API keys), memory maps, device state. */
const PSEUDO_FILE_ROOTS = ["/proc", "/sys"];

/**
 * The secret rules, as shown to users (SPEC §4.4): what exai never reads or sends to a model.
 * A file whose content holds a private-key block (`-----BEGIN … PRIVATE KEY-----`) is refused too.
 */
export const SECRET_RULES: readonly string[] = [
  ...SECRET_PREFIXES.map((prefix) => `${prefix}*`),
  ...SECRET_SUFFIXES.map((suffix) => `*${suffix}`),
  ...SECRET_NAMES,
  ...SECRET_PATH_SUFFIXES,
  ...SECRET_DIRECTORIES.map((directory) => `${directory}/`),
  ...PSEUDO_FILE_ROOTS.map((root) => `${root}/`),
];

/**
 * Creates a sandbox over `options.allowedRoots`.
 *
 * Roots are resolved with a synchronous realpath here, once per root set (configuration time,
 * never per request), so that the containment check compares symlink-free paths on both sides.
 * A root that does not exist yet is kept as given (normalised).
 * @throws ExaiError CONFIG_INVALID when a root is not an absolute path.
 */
export function createFileSandbox(options: FileSandboxOptions): FileSandbox {
  const roots = normaliseRoots(options.allowedRoots);

  return {
    allowedRoots: roots,
    resolve: (input, field) => resolveSandboxed(roots, input, field),
    withRoots: (newRoots) => createFileSandbox({ allowedRoots: newRoots }),
  };
}

/**
 * Whether a path names a secret that exai never sends to a model, by name alone (case-insensitive):
 * see SECRET_RULES — `.env*`, `*.pem`, `*.key`, `id_rsa*`, `.git/` internals, `.aws/credentials`, …
 */
export function isSecretPath(filePath: string): boolean {
  return secretRule(filePath) !== undefined;
}

/** The secret rule a path matches (".env*", "*.pem", ".git/", …), or undefined. */
export function secretRule(filePath: string): string | undefined {
  const normalised = path.normalize(filePath);
  const pseudo = PSEUDO_FILE_ROOTS.find((root) => normalised === root || normalised.startsWith(`${root}/`));
  if (pseudo !== undefined) return `${pseudo}/ (kernel pseudo-files)`;
  const segments = normalised.toLowerCase().split(path.sep);
  const directory = SECRET_DIRECTORIES.find((secret) => segments.includes(secret));
  if (directory !== undefined) return `${directory}/ internals`;
  const tail = segments.slice(-2).join("/");
  const pathSuffix = SECRET_PATH_SUFFIXES.find((secret) => tail === secret);
  if (pathSuffix !== undefined) return pathSuffix;
  const base = segments[segments.length - 1] ?? "";
  const name = SECRET_NAMES.find((secret) => base === secret);
  if (name !== undefined) return name;
  const prefix = SECRET_PREFIXES.find((secret) => base.startsWith(secret));
  if (prefix !== undefined) return `${prefix}*`;
  const suffix = SECRET_SUFFIXES.find((secret) => base.endsWith(secret));
  return suffix === undefined ? undefined : `*${suffix}`;
}

/**
 * Whether `candidate` is `root` or lies below it, segment by segment: `/a/bc` is not inside
 * `/a/b`. Both paths must be absolute and normalised.
 */
export function isInsideRoot(candidate: string, root: string): boolean {
  const relative = path.relative(root, candidate);
  if (relative === "") return true;
  if (path.isAbsolute(relative)) return false; // another drive on Windows
  return relative !== ".." && !relative.startsWith(`..${path.sep}`);
}

function normaliseRoots(roots: readonly string[]): string[] {
  const result: string[] = [];
  for (const root of roots) {
    if (typeof root !== "string" || root === "" || !path.isAbsolute(root)) {
      throw new ExaiError(
        "CONFIG_INVALID",
        `allowed root ${JSON.stringify(root)} is not an absolute directory; set EXAI_ALLOWED_ROOTS ` +
          `(or the MCP client's roots) to absolute paths, e.g. /home/me/project`,
        { details: { variables: ["EXAI_ALLOWED_ROOTS"], variable: "EXAI_ALLOWED_ROOTS", value: root } },
      );
    }
    const resolved = realpathIfExists(path.resolve(root));
    if (!result.includes(resolved)) result.push(resolved);
  }
  return result;
}

function realpathIfExists(root: string): string {
  try {
    return realpathSync(root);
  } catch (error) {
    // A root that does not exist (yet) still bounds the sandbox lexically; nothing inside it can
    // be resolved until it exists, so keeping it is safe.
    if (errorCode(error) === "ENOENT" || errorCode(error) === "ENOTDIR") return root;
    throw error;
  }
}

/**
 * Validates `input` (field name `field` in messages) and returns its realpath when it lies inside
 * `roots` and is not a secret by name (the name given and the resolved one). See FileSandbox.resolve.
 */
export async function resolveSandboxed(
  roots: readonly string[],
  input: unknown,
  field: string,
): Promise<string> {
  if (typeof input !== "string") {
    throw invalidArgument(field, `expected an absolute path string, got ${describeType(input)}`, {
      path: input,
    });
  }
  if (input.trim() === "") {
    throw invalidArgument(field, `the path is empty; pass the full path, e.g. ${EXAMPLE_PATH}`, {
      path: input,
    });
  }
  if (input.includes("\0")) {
    throw invalidArgument(
      field,
      `${JSON.stringify(input)} contains a NUL character; pass a plain file path`,
      {
        path: input,
      },
    );
  }
  if (!path.isAbsolute(input)) {
    throw invalidArgument(
      field,
      `${JSON.stringify(input)} is not an absolute path; pass the full path, e.g. ${EXAMPLE_PATH}`,
      { path: input },
    );
  }

  // Checked on the name the user gave as well as on the target, so a symlink called `.env`
  // is refused even when it points at an innocent-looking file.
  const namedRule = secretRule(path.resolve(input));
  if (namedRule !== undefined) throw secretError(field, input, namedRule);

  const real = await realpathOrThrow(input, field);

  if (!roots.some((root) => isInsideRoot(real, root))) throw outsideRootsError(roots, field, input, real);
  const realRule = secretRule(real);
  if (realRule !== undefined) throw secretError(field, input, realRule, real);
  return real;
}

async function realpathOrThrow(input: string, field: string): Promise<string> {
  try {
    return await realpath(input);
  } catch (error) {
    const code = errorCode(error);
    const quoted = JSON.stringify(input);
    const details = { path: input };
    if (code === "ENOENT" || code === "ENOTDIR") {
      throw invalidArgument(field, `${quoted} does not exist; check the path and pass an existing file`, {
        ...details,
        missing: true,
      });
    }
    if (code === "ELOOP") {
      throw invalidArgument(field, `${quoted} is a symlink loop; pass the path of a real file`, details);
    }
    if (code === "EACCES" || code === "EPERM") {
      throw new ExaiError(
        "FILE_ACCESS_DENIED",
        `${field}: ${quoted} cannot be resolved: permission denied for the exai server process`,
        { cause: error, details: { field, ...details } },
      );
    }
    throw invalidArgument(field, `${quoted} cannot be resolved (${code ?? describeError(error)})`, details);
  }
}

function outsideRootsError(roots: readonly string[], field: string, input: string, real: string): ExaiError {
  const where = real === input ? JSON.stringify(input) : `${JSON.stringify(input)} (resolves to ${real})`;
  const allowed =
    roots.length === 0 ? "no directory is allowed" : `the allowed roots are ${roots.join(", ")}`;
  return new ExaiError(
    "FILE_ACCESS_DENIED",
    `${field}: ${where} is outside the allowed roots; ${allowed}. ` +
      `To allow it, add its directory to EXAI_ALLOWED_ROOTS or open it as a root in your MCP client.`,
    { details: { field, path: input, resolved_path: real, allowed_roots: [...roots] } },
  );
}

/**
 * The FILE_ACCESS_DENIED error for a secret: names the field, the path (and its realpath when it
 * differs) and the rule (`*.pem`, "holds a private key block …"). `details.secret` is "name" or
 * "content" (how it was recognised).
 */
export function secretError(
  field: string,
  input: string,
  rule: string,
  real?: string,
  by: "name" | "content" = "name",
): ExaiError {
  const where =
    real === undefined || real === input
      ? JSON.stringify(input)
      : `${JSON.stringify(input)} (resolves to ${real})`;
  const what = by === "content" ? `is a secret: it ${rule}` : `is a secret file (${rule})`;
  return new ExaiError(
    "FILE_ACCESS_DENIED",
    `${field}: ${where} ${what}; exai never sends secrets to a model. Remove it from the request.`,
    { details: { field, path: input, secret: by, rule } },
  );
}

function describeType(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return typeof value;
}

function describeError(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** The `code` of a Node.js system error (`ENOENT`, …), if any. */
export function errorCode(error: unknown): string | undefined {
  if (typeof error !== "object" || error === null) return undefined;
  const code = (error as { code?: unknown }).code;
  return typeof code === "string" ? code : undefined;
}
