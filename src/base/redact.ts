/**
 * Secret redaction at the edges (SPEC §6.7): every configured API key and the daemon token are
 * replaced by `[redacted]` in tool results, error messages, provider error texts and log lines,
 * whatever a provider echoes back ("invalid key sk-…" in a 401 body).
 */

export const REDACTED = "[redacted]";

/** The key config stores for a custom endpoint that needs none (src/config/load.ts). */
const KEYLESS_PLACEHOLDER = "not-needed";

/** Secrets shorter than this are not redacted: they would match ordinary text. */
export const MIN_SECRET_LENGTH = 8;

export interface Redactor {
  /** True when there is at least one secret to redact (else every call is the identity). */
  readonly active: boolean;
  /** `text` with every secret (and its obvious encodings) replaced by `[redacted]`. */
  text(text: string): string;
  /**
   * `value` with every string inside it redacted: a copy where something changed, the same object
   * (or array) where nothing did. Object keys are redacted too.
   */
  value<T>(value: T): T;
  /** Adds a secret learnt after start (a generated daemon token); shorter than MIN_SECRET_LENGTH: ignored. */
  add(secret: string): void;
}

/** The parts of the configuration that hold secrets (structurally the loaded `Config`). */
export interface SecretSource {
  providers: Readonly<Record<string, { apiKey: string } | undefined>>;
  daemon: { token?: string };
}

/** The secrets a configuration holds: every provider's API key and the daemon token. */
export function configuredSecrets(config: SecretSource): string[] {
  const secrets: string[] = [];
  for (const settings of Object.values(config.providers)) {
    // A custom endpoint without a key carries the placeholder "not-needed": not a secret.
    if (settings && settings.apiKey !== KEYLESS_PLACEHOLDER) secrets.push(settings.apiKey);
  }
  if (config.daemon.token !== undefined) secrets.push(config.daemon.token);
  return secrets;
}

/**
 * Builds a redactor for `secrets` (values shorter than MIN_SECRET_LENGTH are ignored). Each secret
 * is matched as is and in its obvious encodings: URL-encoded, JSON-escaped and base64.
 */
export function createRedactor(secrets: readonly string[]): Redactor {
  const needles = new Set<string>();
  let list: string[] = [];
  const add = (secret: string) => {
    if (typeof secret !== "string" || secret.length < MIN_SECRET_LENGTH) return;
    const bytes = Buffer.from(secret, "utf8");
    for (const form of [
      secret,
      encodeURIComponent(secret),
      JSON.stringify(secret).slice(1, -1),
      bytes.toString("base64"),
      bytes.toString("base64url"),
    ]) {
      if (form.length >= MIN_SECRET_LENGTH) needles.add(form);
    }
    // Longest first, so an encoding that contains another needle is replaced whole.
    list = [...needles].sort((a, b) => b.length - a.length);
  };
  for (const secret of secrets) add(secret);
  const text = (input: string): string => {
    let out = input;
    for (const needle of list) if (out.includes(needle)) out = out.split(needle).join(REDACTED);
    return out;
  };
  return {
    get active() {
      return list.length > 0;
    },
    text,
    value: <T>(input: T): T => (list.length === 0 ? input : (redactValue(input, text) as T)),
    add,
  };
}

/** A redactor built from the configuration's keys and token. */
export function redactorFor(config: SecretSource): Redactor {
  return createRedactor(configuredSecrets(config));
}

/**
 * Copy-on-write walk. Iterative over an explicit stack, so a deeply nested provider answer cannot
 * overflow the call stack here. A container is copied only when something inside it changed.
 */
function redactValue(root: unknown, text: (input: string) => string): unknown {
  if (typeof root === "string") return text(root);
  if (root === null || typeof root !== "object") return root;
  interface Frame {
    node: Record<string, unknown>;
    keys: string[];
    index: number;
    /** The copy being built, once a child or key changed. */
    copy?: Record<string, unknown>;
    /** Redacted names of keys that held a secret. */
    renamed?: Map<string, string>;
    parent?: Frame;
    parentKey?: string;
  }
  const open = (node: object, parent?: Frame, parentKey?: string): Frame => ({
    node: node as Record<string, unknown>,
    keys: Object.keys(node),
    index: 0,
    ...(parent ? { parent, parentKey } : {}),
  });
  const write = (frame: Frame, key: string, next: unknown) => {
    frame.copy ??= Array.isArray(frame.node)
      ? ([...(frame.node as unknown[])] as unknown as Record<string, unknown>)
      : { ...frame.node };
    frame.copy[frame.renamed?.get(key) ?? key] = next;
  };
  // Finished containers → their redacted form (a value shared by two parents is walked once);
  // a container still open (a cycle) maps to itself.
  const seen = new Map<object, unknown>([[root, root]]);
  let frame: Frame | undefined = open(root);
  let result: unknown = root;
  while (frame) {
    if (frame.index < frame.keys.length) {
      const key = frame.keys[frame.index++] as string;
      const child = frame.node[key];
      if (!Array.isArray(frame.node)) {
        const name = text(key);
        if (name !== key) {
          (frame.renamed ??= new Map()).set(key, name);
          frame.copy ??= { ...frame.node };
          delete frame.copy[key];
          frame.copy[name] = child;
        }
      }
      if (typeof child === "string") {
        const next = text(child);
        if (next !== child) write(frame, key, next);
      } else if (child !== null && typeof child === "object") {
        if (seen.has(child)) {
          const known = seen.get(child);
          if (known !== child) write(frame, key, known);
        } else {
          seen.set(child, child);
          frame = open(child, frame, key);
        }
      }
      continue;
    }
    const done: Frame = frame;
    seen.set(done.node, done.copy ?? done.node);
    frame = done.parent;
    if (frame === undefined) result = done.copy ?? done.node;
    else if (done.copy !== undefined && done.parentKey !== undefined) write(frame, done.parentKey, done.copy);
  }
  return result;
}
