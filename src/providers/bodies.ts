/**
 * Guarded body reading: every byte a provider sends is bounded before it is buffered — a chat
 * event stream line by line, any other body as a whole — and response headers are copied
 * without credentials or cookies.
 */
import type { ExaiError } from "../base/errors.js";

/** The fetch-init key carrying a LineGuard from a chat attempt to fetchWithPool. */
export const LINE_GUARD = "exaiLineGuard";

/** Most bytes read of a chat response that is not a 2xx event stream (errors are shown 300 characters). */
export const MAX_ERROR_BODY_BYTES = 1024 * 1024;

export interface LineGuard {
  /** Longest line of a 2xx event stream, bytes. */
  maxLineBytes: number;
  /** Largest body of any other response, bytes. */
  maxBodyBytes: number;
  /** Stops the attempt; returns the error the stream fails with. */
  overflow(bytes: number, what: "line" | "body"): ExaiError;
}

/**
 * The response with a bounded body: a 2xx event stream fails (via `guard.overflow`) as soon as
 * one line passes `guard.maxLineBytes`; any other body once it passes `guard.maxBodyBytes`.
 */
export function guardLines(response: Response, guard: LineGuard): Response {
  if (!response.body) return response;
  const stream = response.ok && (response.headers.get("content-type") ?? "").includes("event-stream");
  let sinceNewline = 0;
  let total = 0;
  const body = response.body.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        if (stream) {
          const last = chunk.lastIndexOf(0x0a);
          sinceNewline = last >= 0 ? chunk.length - last - 1 : sinceNewline + chunk.length;
          if (sinceNewline > guard.maxLineBytes)
            return controller.error(guard.overflow(sinceNewline, "line"));
        } else {
          total += chunk.length;
          if (total > guard.maxBodyBytes) return controller.error(guard.overflow(total, "body"));
        }
        controller.enqueue(chunk);
      },
    }),
  );
  const guarded = new Response(body, {
    status: response.status,
    statusText: response.statusText,
    headers: response.headers,
  });
  // The SDK names the URL in its debug output and errors.
  Object.defineProperty(guarded, "url", { value: response.url });
  return guarded;
}

/** Header names never copied into a result: credentials and cookies. */
const HIDDEN_HEADERS = new Set(["authorization", "proxy-authorization", "cookie", "set-cookie"]);

/** Response headers as a plain object (lower-case names), without credentials or cookies. */
export function safeHeaders(headers: { forEach(callback: (value: string, name: string) => void): void }) {
  const out: Record<string, string> = {};
  headers.forEach((value, name) => {
    if (!HIDDEN_HEADERS.has(name.toLowerCase())) out[name.toLowerCase()] = value;
  });
  return out;
}

/**
 * Reads a response body as UTF-8 text, at most `limitBytes` bytes; past that calls `overflow`
 * (which aborts the request and returns the error to throw) and throws its result.
 */
export async function readBoundedText(
  response: { headers: { get(name: string): string | null }; body: ReadableStream<Uint8Array> | null },
  limitBytes: number,
  overflow: () => ExaiError,
): Promise<string> {
  const declared = Number(response.headers.get("content-length") ?? Number.NaN);
  if (Number.isFinite(declared) && declared > limitBytes) {
    await response.body?.cancel().catch(() => undefined);
    throw overflow();
  }
  if (!response.body) return "";
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > limitBytes) {
      await reader.cancel().catch(() => undefined);
      throw overflow();
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString("utf8");
}
