/** The fake provider's request handler: records each request, applies its rule (delay, fault) and routes it. */
import type { IncomingMessage, ServerResponse } from "node:http";
import { handleChat } from "./chat-completions.js";
import type { RecordedRequest } from "./fake-types.js";
import { applyFault, isChatCompletion, type FaultTarget } from "./faults.js";
import type { FileStore } from "./files-endpoint.js";
import { sendModels } from "./models.js";
import type { RequestQueue } from "./request-queue.js";
import { flattenHeaders, normalizePath, parseBody } from "./request-parsing.js";
import { errorBody, sendJson } from "./responses.js";
import type { Wait } from "./sleep.js";
import { handleWebSearch } from "./web-search.js";

/** The state of one instance that the handler uses. */
export interface HandlerContext {
  queue: RequestQueue;
  files: FileStore;
  wait: Wait;
  /** The abort controllers of the requests in flight (close() aborts them). */
  inflight: Set<AbortController>;
  /** True once close() began: a response cut by it is not counted as aborted by the client. */
  isClosing: () => boolean;
}

/** The node:http request listener of one fake provider instance. */
export function createRequestHandler(
  ctx: HandlerContext,
): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    const record: RecordedRequest = {
      id: 0,
      method: (req.method ?? "GET").toUpperCase(),
      path: normalizePath(req.url ?? "/"),
      headers: flattenHeaders(req.headers),
      body: undefined,
      receivedAt: performance.now(),
    };
    const controller = new AbortController();
    ctx.inflight.add(controller);
    let recorded = false;
    let selfDestroyed = false;
    const recordOnce = (): void => {
      if (recorded) return;
      recorded = true;
      ctx.queue.record(record);
    };
    res.on("finish", () => {
      record.completedAt = performance.now();
    });
    res.on("close", () => {
      if (!res.writableFinished && !selfDestroyed && !ctx.isClosing()) record.abortedAt = performance.now();
      ctx.inflight.delete(controller);
      controller.abort();
      recordOnce();
    });
    res.on("error", () => undefined);
    req.on("error", () => undefined);

    const target: FaultTarget = {
      record,
      req,
      res,
      signal: controller.signal,
      markSelfDestroyed: () => {
        selfDestroyed = true;
      },
    };
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const raw = Buffer.concat(chunks);
      const { body, invalidJson } = parseBody(raw, record.headers);
      record.body = body;
      recordOnce();
      if (res.destroyed) return;
      if (invalidJson) {
        sendJson(res, 400, errorBody("invalid JSON body", "invalid_request_error"));
        return;
      }
      respond(ctx, target, raw).catch((error: unknown) => {
        const message = error instanceof Error ? error.message : String(error);
        if (!res.headersSent)
          sendJson(res, 500, errorBody(`fake provider error: ${message}`, "server_error"));
        else res.destroy();
      });
    });
  };
}

/** Takes the request's rule, waits its delay, applies its fault, else answers by endpoint (404 if none). */
async function respond(ctx: HandlerContext, target: FaultTarget, raw: Buffer): Promise<void> {
  const { record, res, signal } = target;
  const isChat = isChatCompletion(record);
  const rule = ctx.queue.takeRule(record, raw.toString("utf8"));
  const fault = rule?.fault;
  if (fault) record.faultApplied = fault.kind;
  let delay = rule ? (rule.delayMs ?? 0) : isChat ? ctx.queue.defaultDelayMs() : 0;
  if (fault?.kind === "slow") delay += fault.delayMs;
  if (!(await ctx.wait(delay, signal))) return;
  if (await applyFault(fault, target)) return;

  if (isChat) {
    await handleChat(record, res, signal, raw.length, rule, ctx.wait);
    return;
  }
  if (record.method === "POST" && record.path === "/web_search") {
    handleWebSearch(record, res);
    return;
  }
  if (record.method === "GET" && record.path === "/models") {
    sendModels(res);
    return;
  }
  if (ctx.files.handle(record, res)) return;
  sendJson(
    res,
    404,
    errorBody(`unknown endpoint: ${record.method} ${record.path}`, "resource_not_found_error", "404"),
  );
}
