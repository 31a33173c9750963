/**
 * What the provider-specific tools (kimi_*, glm_*, smart_file_query) share: the provider call
 * context built from a tool call, "this tool needs provider X" checks, model selection limited to
 * one provider, and file uploads de-duplicated by content sha256 through the Store (SPEC §5, §8).
 *
 * Provider facts used here (platform.moonshot.ai/docs/api/files, docs.z.ai/api-reference/agents/file-upload):
 * - Moonshot: `POST /files` multipart {file, purpose:"file-extract"}, ≤ 100 MB per file; the text
 *   comes from `GET /files/{id}/content`, read as text (the docs do not pin the format down; it is
 *   believed to be a JSON envelope `{content, file_type, filename, …}`, which is passed to the model
 *   as-is and unwrapped for display — plain text works too).
 * - Z.ai: `POST /files` multipart {file, purpose}, ≤ 100 MB per file, kept 180 days (docs.z.ai).
 */
import { createHash } from "node:crypto";
import { basename } from "node:path";
import type { ProviderName } from "../config/load.js";
import { ExaiError, invalidArgument } from "../base/errors.js";
import type { ResolvedModel } from "../providers/registry.js";
import { oversizedPrompt } from "./common.js";
import type { Services, ToolContext } from "./framework.js";

/** The variable that enables each provider, for NO_PROVIDER messages. */
export const PROVIDER_VARIABLE: Record<ProviderName, string> = {
  glm: "GLM_API_KEY",
  kimi: "KIMI_API_KEY",
  custom: "CUSTOM_API_URL",
};

const PROVIDER_LABEL: Record<ProviderName, string> = {
  glm: "GLM (Z.ai)",
  kimi: "Kimi (Moonshot)",
  custom: "custom",
};

/** Largest file either provider accepts, bytes (Moonshot and Z.ai docs: 100 MB per file). */
const MAX_UPLOAD_BYTES = 100 * 1024 * 1024;
/** Most files one call may upload (after directories are expanded). */
const MAX_UPLOAD_FILES = 20;
/** Z.ai keeps uploads 180 days (docs.z.ai file-upload); older records are uploaded again. */
const GLM_RETENTION_MS = 180 * 24 * 3_600_000;

/**
 * Checks that provider `name` is configured; returns `name`.
 * @throws ExaiError NO_PROVIDER naming the variable to set (GLM_API_KEY / KIMI_API_KEY).
 */
export function requireProvider(services: Services, name: ProviderName, tool: string): ProviderName {
  if (services.registry.configuredProviders().includes(name)) return name;
  throw new ExaiError(
    "NO_PROVIDER",
    `${tool} needs the ${PROVIDER_LABEL[name]} provider, which is not configured: set ${PROVIDER_VARIABLE[name]} in the environment or .env and restart`,
    { details: { variables: [PROVIDER_VARIABLE[name]] } },
  );
}

/**
 * `selectModel` for a tool bound to `provider` whose text argument `field` may be oversized: no
 * model (and so no provider slot) when the text is over the limit — the tool answers resend_prompt.
 */
export function providerModelSelector(provider: ProviderName, tool: string, field: string) {
  return (
    args: { model?: string | undefined } & Record<string, unknown>,
    services: Services,
  ): ResolvedModel | undefined =>
    oversizedPrompt(field, args[field] as string | undefined)
      ? undefined
      : resolveProviderModel(services, provider, args.model, tool);
}

/**
 * Resolves the model of a tool bound to one provider: `name` when given (it must belong to that
 * provider), else the first of DEFAULT_MODEL, the fast/long default and the provider's available
 * models that belongs to it.
 * @throws ExaiError NO_PROVIDER (provider not configured), INVALID_ARGUMENT (field `model`: a model
 *   of another provider), MODEL_NOT_FOUND (unknown or not allowed).
 */
export function resolveProviderModel(
  services: Services,
  provider: ProviderName,
  name: string | undefined,
  tool: string,
): ResolvedModel {
  requireProvider(services, provider, tool);
  const { registry, config } = services;
  if (name !== undefined && name.trim() !== "") {
    const resolved = registry.resolve(name);
    if (resolved.model.provider !== provider) {
      const examples = registry
        .available()
        .filter((model) => model.provider === provider)
        .slice(0, 4)
        .map((model) => model.id);
      throw invalidArgument(
        "model",
        `${tool} talks to ${PROVIDER_LABEL[provider]}, but ${JSON.stringify(name)} is a ${resolved.model.provider} model; pass one of ${examples.join(", ")} or omit model`,
      );
    }
    return resolved;
  }
  const preferred = provider === "kimi" ? config.longModelDefault : config.fastModelDefault;
  const candidates = [
    config.defaultModel,
    preferred,
    ...registry
      .available()
      .filter((model) => model.provider === provider)
      .map((model) => model.id),
  ];
  for (const candidate of candidates) {
    if (candidate.toLowerCase() === "auto") continue;
    try {
      const resolved = registry.resolve(candidate);
      if (resolved.model.provider === provider) return resolved;
    } catch (error) {
      // A default that names another provider or a model outside the allow-list: try the next one.
      if (!ExaiError.is(error)) throw error;
    }
  }
  throw new ExaiError(
    "MODEL_NOT_FOUND",
    `${tool}: no ${PROVIDER_LABEL[provider]} model is available; check ${provider.toUpperCase()}_ALLOWED_MODELS`,
    { details: { provider } },
  );
}

/** A local file read for upload. */
export interface LocalFile {
  path: string;
  filename: string;
  content: Buffer;
  bytes: number;
  /** Lower-case hex sha256 of the content. */
  sha256: string;
}

/**
 * Expands `paths` through the call's sandbox (absolute paths, symlinks resolved, secrets refused,
 * directories expanded) and reads each file.
 * @throws ExaiError FILE_ACCESS_DENIED / INVALID_ARGUMENT naming `field[i]`; INVALID_ARGUMENT when
 *   more than MAX_UPLOAD_FILES files or a file over MAX_UPLOAD_BYTES.
 */
export async function readLocalFiles(
  context: ToolContext,
  paths: readonly string[],
  field: string,
): Promise<LocalFile[]> {
  const expanded = await context.files.expand(paths, field, context.signal);
  if (expanded.length === 0) throw invalidArgument(field, "no readable file found under the given paths");
  if (expanded.length > MAX_UPLOAD_FILES) {
    throw invalidArgument(
      field,
      `expands to ${expanded.length} files; at most ${MAX_UPLOAD_FILES} can be uploaded per call — name the files you need`,
    );
  }
  const files: LocalFile[] = [];
  for (const path of expanded) {
    // Opened once through the sandbox: a regular file inside the roots, no private key in it,
    // refused before reading when over the limit, and read from the same descriptor.
    const file = await context.files.open(path, {
      purpose: "upload",
      field,
      maxBytes: MAX_UPLOAD_BYTES,
      signal: context.signal,
    });
    if (file.content === undefined) {
      throw invalidArgument(
        field,
        `${path} is ${(file.size / 1_048_576).toFixed(1)} MB; the providers accept at most ${MAX_UPLOAD_BYTES / 1_048_576} MB per file`,
        { path },
      );
    }
    const { content } = file;
    files.push({
      path,
      filename: basename(path),
      content,
      bytes: content.length,
      sha256: createHash("sha256").update(content).digest("hex"),
    });
  }
  return files;
}

/** An upload, new or found again in the Store. */
export interface Upload {
  fileId: string;
  /** True when the Store already knew this content and nothing was uploaded. */
  reused: boolean;
}

/** The Store key of uploads: the provider, plus the purpose when it is not the provider's default. */
export function storeProviderKey(provider: ProviderName, purpose: string): string {
  const defaultPurpose = provider === "kimi" ? "file-extract" : "file";
  return purpose === defaultPurpose ? provider : `${provider}:${purpose}`;
}

/**
 * Uploads `file` once per (content sha256, provider, purpose): a recorded upload is reused, a new
 * one is recorded with `putFile`. `POST /files` is not retried (an upload is not idempotent).
 * @throws ExaiError from the provider (PROVIDER_ERROR, RATE_LIMITED, TIMEOUT…).
 */
export async function uploadOnce(
  context: ToolContext,
  provider: ProviderName,
  file: LocalFile,
  purpose: string,
): Promise<Upload> {
  const { store } = context.services;
  const key = storeProviderKey(provider, purpose);
  const known = await store.findFile(file.sha256, key);
  const expired =
    provider === "glm" && known !== undefined && Date.now() - known.createdAt > GLM_RETENTION_MS;
  if (known && !expired) return { fileId: known.providerFileId, reused: true };
  context.progress(
    `uploading ${file.filename} (${file.bytes.toLocaleString("en-US")} bytes) to ${PROVIDER_LABEL[provider]}`,
  );
  // An upload is not idempotent: sent once, never retried.
  const response = await context.providerRequest<{ id?: unknown }>({
    provider,
    path: "/files",
    method: "POST",
    form: { fields: { purpose }, file: { name: file.filename, content: file.content } },
  });
  if (typeof response.id !== "string" || response.id === "") {
    throw new ExaiError(
      "PROVIDER_ERROR",
      `${PROVIDER_LABEL[provider]} POST /files: the response has no file id (${JSON.stringify(response).slice(0, 200)})`,
      { details: { provider } },
    );
  }
  await store.putFile({
    sha256: file.sha256,
    provider: key,
    providerFileId: response.id,
    filename: file.filename,
    bytes: file.bytes,
  });
  return { fileId: response.id, reused: false };
}

/** True for an HTTP 404 from the provider (the file id is gone). */
export function isNotFound(error: unknown): boolean {
  return ExaiError.is(error) && error.details.status === 404;
}

/** Text extracted by Moonshot from one uploaded file. */
export interface ExtractedFile extends Upload {
  /** The body of GET /files/{id}/content as the provider sent it (what goes to the model). */
  raw: string;
  /** The extracted text: the envelope's `content` field, else the raw body. */
  text: string;
}

/**
 * Uploads (once) and extracts a file with Moonshot's file-extract. When a reused file id is gone at
 * the provider (deleted or expired), the stale record is dropped and the file is uploaded again.
 */
export async function uploadAndExtract(context: ToolContext, file: LocalFile): Promise<ExtractedFile> {
  let upload = await uploadOnce(context, "kimi", file, "file-extract");
  let raw: string;
  try {
    raw = await fetchContent(context, upload.fileId, file.filename);
  } catch (error) {
    if (!upload.reused || !isNotFound(error)) throw error;
    await context.services.store.deleteFile(storeProviderKey("kimi", "file-extract"), upload.fileId);
    upload = await uploadOnce(context, "kimi", file, "file-extract");
    raw = await fetchContent(context, upload.fileId, file.filename);
  }
  return { ...upload, raw, text: envelopeText(raw) };
}

async function fetchContent(context: ToolContext, fileId: string, filename: string): Promise<string> {
  context.progress(`extracting ${filename} with ${PROVIDER_LABEL.kimi}`);
  return context.providerRequest<string>({
    provider: "kimi",
    path: `/files/${encodeURIComponent(fileId)}/content`,
    method: "GET",
    responseType: "text",
  });
}

/** The `content` of Moonshot's `{content, file_type, filename, …}` envelope, else the body itself. */
function envelopeText(raw: string): string {
  if (!raw.trimStart().startsWith("{")) return raw;
  try {
    const parsed = JSON.parse(raw) as { content?: unknown };
    return typeof parsed.content === "string" ? parsed.content : raw;
  } catch {
    // Not JSON after all: the body is the text.
    return raw;
  }
}

/** Runs `work` over `items` with at most `limit` in flight; results in input order. */
export async function mapLimited<T, R>(
  items: readonly T[],
  limit: number,
  work: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await work(items[index] as T, index);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}
