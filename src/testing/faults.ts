/** The scripted faults of the fake provider: hangs, resets, error statuses, malformed and endless bodies, stalls. */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { FakeFault, RecordedRequest } from "./fake-types.js";
import { isRecord } from "./request-parsing.js";
import { errorBody, sendJson, writeEventStreamHead, writeForever } from "./responses.js";

/** Where a fault acts: the request, its response, its abort signal. */
export interface FaultTarget {
  record: RecordedRequest;
  req: IncomingMessage;
  res: ServerResponse;
  signal: AbortSignal;
  /** Called before the fake destroys the socket itself (so the request is not counted as aborted). */
  markSelfDestroyed: () => void;
}

/**
 * Applies `fault` (after its delay) to `target`. Returns true when the fault is the whole answer (or
 * the lack of one); false when the normal handler must answer (no fault, `slow`, or a chat request's
 * `stall_after_chunks`, which the chat handler applies).
 */
export async function applyFault(fault: FakeFault | undefined, target: FaultTarget): Promise<boolean> {
  const { record, res } = target;
  switch (fault?.kind) {
    case "hang_before_headers":
      return true; // never answer; the socket is destroyed by the client or by close()
    case "reset": {
      target.markSelfDestroyed();
      const socket = target.req.socket;
      if (typeof socket.resetAndDestroy === "function") socket.resetAndDestroy();
      else socket.destroy();
      return true;
    }
    case "status": {
      const status = fault.status;
      const body = fault.body ?? errorBody(`fake ${status}`, "server_error", String(status));
      sendJson(res, status, body, fault.headers ?? {});
      return true;
    }
    case "malformed_json":
      sendMalformed(res, record);
      return true;
    case "endless":
      await sendEndless(res, record, fault, target.signal);
      return true;
    case "stall_after_chunks":
      if (!isChatCompletion(record)) {
        res.writeHead(200, { "content-type": "application/json; charset=utf-8" });
        res.write('{"object":');
        return true;
      }
      return false;
    default:
      return false;
  }
}

/** True for `POST /chat/completions`. */
export function isChatCompletion(record: RecordedRequest): boolean {
  return record.method === "POST" && record.path === "/chat/completions";
}

async function sendEndless(
  res: ServerResponse,
  record: RecordedRequest,
  fault: Extract<FakeFault, { kind: "endless" }>,
  signal: AbortSignal,
): Promise<void> {
  const piece = "x".repeat(Math.max(1, fault.chunkChars ?? 4096));
  const limit = fault.limitBytes ?? Number.POSITIVE_INFINITY;
  const stream = isRecord(record.body) && record.body.stream === true;
  const status = fault.status ?? 200;
  if (stream && status === 200 && record.path === "/chat/completions") {
    writeEventStreamHead(res);
    if (fault.oneLine) {
      res.write(`data: {"id":"chatcmpl-fake-${record.id}","choices":[{"index":0,"delta":{"content":"`);
      await writeForever(res, piece, signal, limit);
      return;
    }
    const model = isRecord(record.body) && typeof record.body.model === "string" ? record.body.model : "";
    const delta = fault.field === "reasoning" ? { reasoning_content: piece } : { content: piece };
    const event = `data: ${JSON.stringify({
      id: `chatcmpl-fake-${record.id}`,
      object: "chat.completion.chunk",
      model,
      choices: [{ index: 0, delta, finish_reason: null }],
    })}\n\n`;
    await writeForever(res, event, signal, limit);
    return;
  }
  res.writeHead(status, { "content-type": "application/json; charset=utf-8" });
  res.write('{"id":"endless","content":"');
  await writeForever(res, piece, signal, limit);
}

function sendMalformed(res: ServerResponse, record: RecordedRequest): void {
  const stream = isRecord(record.body) && record.body.stream === true;
  if (stream && record.path === "/chat/completions") {
    writeEventStreamHead(res);
    res.write(`data: {"id":"chatcmpl-fake-${record.id}","choices":[{"delta":{"content":"bro\n\n`);
    res.end("data: [DONE]\n\n");
    return;
  }
  sendJson(res, 200, `{"id":"chatcmpl-fake-${record.id}","object":"chat.completion","choices":[`);
}
