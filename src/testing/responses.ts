/** Writing helpers of the fake provider: JSON answers, OpenAI-style error bodies and SSE streams. */
import type { ServerResponse } from "node:http";

/** An OpenAI-style error body: `{error: {message, type, code?}}`. */
export function errorBody(message: string, type: string, code?: string): { error: Record<string, string> } {
  return { error: code === undefined ? { message, type } : { message, type, code } };
}

/**
 * Answers with `status` and `body` (JSON-encoded unless it is a string, sent as is) and a
 * content-length; a JSON content type unless `headers` name one. Does nothing once headers went out.
 */
export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  if (res.headersSent || res.destroyed) return;
  const text = typeof body === "string" ? body : JSON.stringify(body);
  const hasType = Object.keys(headers).some((name) => name.toLowerCase() === "content-type");
  res.writeHead(status, {
    ...(hasType ? {} : { "content-type": "application/json; charset=utf-8" }),
    "content-length": String(Buffer.byteLength(text)),
    ...headers,
  });
  res.end(text);
}

/** Writes the 200 head of a server-sent-events answer (event-stream type, no-cache). */
export function writeEventStreamHead(res: ServerResponse): void {
  res.writeHead(200, { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache" });
}

/**
 * Opens a chat completion stream: the 200 event-stream head with keep-alive, flushed at once.
 * Returns the event writer: it sends `payload` as one `data:` line and returns false (sending
 * nothing) once the response is destroyed or ended.
 */
export function openEventStream(res: ServerResponse): (payload: unknown) => boolean {
  res.writeHead(200, {
    "content-type": "text/event-stream; charset=utf-8",
    "cache-control": "no-cache",
    connection: "keep-alive",
  });
  res.flushHeaders();
  return (payload: unknown): boolean => {
    if (res.destroyed || res.writableEnded) return false;
    res.write(`data: ${JSON.stringify(payload)}\n\n`);
    return true;
  };
}

/** Writes `text` until the client is gone or `limit` bytes went out, waiting for 'drain'. */
export async function writeForever(
  res: ServerResponse,
  text: string,
  signal: AbortSignal,
  limit: number,
): Promise<void> {
  const bytes = Buffer.from(text);
  let sent = 0;
  while (!signal.aborted && !res.destroyed && sent < limit) {
    sent += bytes.length;
    if (!res.write(bytes)) await drainedOrGone(res, signal);
  }
  if (!res.destroyed) res.end();
}

/** Resolves on the response's 'drain' or 'close', or when `signal` aborts. */
function drainedOrGone(res: ServerResponse, signal: AbortSignal): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = (): void => {
      res.off("drain", done);
      res.off("close", done);
      signal.removeEventListener("abort", done);
      resolve();
    };
    res.on("drain", done);
    res.on("close", done);
    signal.addEventListener("abort", done, { once: true });
  });
}
