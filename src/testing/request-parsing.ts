/** Request parsing for the fake provider: paths, headers and multipart/form-data bodies. */
import type { IncomingMessage } from "node:http";

/** A parsed multipart/form-data body: its text fields and its (first) file part. */
export interface MultipartBody {
  fields: Record<string, string>;
  file?: { filename: string; bytes: number; content: string };
}

const PATH_PREFIX = /^\/(?:v1|api\/paas\/v4|api\/coding\/paas\/v4|paas\/v4)(?=\/|$)/;

/** True for a plain object (not null, not an array). */
export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** "/v1/chat/completions?x=1" → "/chat/completions". */
export function normalizePath(rawUrl: string): string {
  const withoutQuery = rawUrl.split("?")[0] ?? "/";
  let path = withoutQuery.replace(PATH_PREFIX, "");
  if (path.length > 1 && path.endsWith("/")) path = path.slice(0, -1);
  return path === "" ? "/" : path;
}

/** Node's headers as one string per lower-cased name (repeated values joined with ", "). */
export function flattenHeaders(headers: IncomingMessage["headers"]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    out[name.toLowerCase()] = Array.isArray(value) ? value.join(", ") : value;
  }
  return out;
}

/** Parses the parameters of a header such as `form-data; name="file"; filename="a.txt"`. */
function headerParams(value: string): Record<string, string> {
  const params: Record<string, string> = {};
  const re = /;\s*([^=;\s]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;]*))/g;
  for (let m = re.exec(value); m !== null; m = re.exec(value)) {
    const key = (m[1] ?? "").toLowerCase();
    params[key] = m[2] !== undefined ? m[2].replace(/\\(.)/g, "$1") : (m[3] ?? "").trim();
  }
  return params;
}

/** Minimal multipart/form-data parser; returns undefined when the body is not well formed. */
export function parseMultipart(body: Buffer, contentType: string): MultipartBody | undefined {
  const boundary = headerParams(contentType).boundary;
  if (!boundary) return undefined;
  const delimiter = Buffer.from(`--${boundary}`);
  const nextDelimiter = Buffer.from(`\r\n--${boundary}`);
  const result: MultipartBody = { fields: {} };
  let pos = body.indexOf(delimiter);
  if (pos < 0) return undefined;
  pos += delimiter.length;
  for (;;) {
    if (body[pos] === 0x2d && body[pos + 1] === 0x2d) return result; // "--": closing delimiter
    if (body[pos] === 0x0d && body[pos + 1] === 0x0a) pos += 2;
    const end = body.indexOf(nextDelimiter, pos);
    if (end < 0) return undefined;
    const part = body.subarray(pos, end);
    const headerEnd = part.indexOf("\r\n\r\n");
    if (headerEnd < 0) return undefined;
    const partHeaders: Record<string, string> = {};
    for (const line of part.subarray(0, headerEnd).toString("utf8").split("\r\n")) {
      const colon = line.indexOf(":");
      if (colon > 0) partHeaders[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    const content = part.subarray(headerEnd + 4);
    const disposition = headerParams(partHeaders["content-disposition"] ?? "");
    const name = disposition.name ?? "";
    if (disposition.filename !== undefined || name === "file") {
      result.file = {
        filename: disposition.filename ?? "file",
        bytes: content.length,
        content: content.toString("utf8"),
      };
    } else if (name) {
      result.fields[name] = content.toString("utf8");
    }
    pos = end + nextDelimiter.length;
  }
}

/**
 * The body of a request as the fake records it: `{fields, file?}` for multipart (raw text when it is
 * not well formed), parsed JSON, raw text when it is not JSON, undefined when empty. `invalidJson`:
 * the text did not parse although the content type says JSON.
 */
export function parseBody(
  raw: Buffer,
  headers: Record<string, string>,
): { body: unknown; invalidJson: boolean } {
  const contentType = (headers["content-type"] ?? "").toLowerCase();
  if (contentType.startsWith("multipart/form-data")) {
    return {
      body: parseMultipart(raw, headers["content-type"] ?? "") ?? raw.toString("utf8"),
      invalidJson: false,
    };
  }
  if (raw.length === 0) return { body: undefined, invalidJson: false };
  const text = raw.toString("utf8");
  try {
    return { body: JSON.parse(text) as unknown, invalidJson: false };
  } catch {
    return { body: text, invalidJson: contentType.includes("json") };
  }
}
