/**
 * A fake OpenAI-compatible provider: a real HTTP server (node:http) that speaks the GLM (Z.ai) and
 * Kimi (Moonshot) dialects closely enough for the official `openai` SDK, streaming and not.
 *
 * Used by the test suite (with scripted faults: hangs, stalls, slow answers, error statuses, resets,
 * malformed JSON) and runnable for demos (`exai fake-provider --port 8787`, see ./server.ts).
 *
 * Endpoints (each also reachable under a `/v1` or `/api/paas/v4` prefix):
 * - `POST /chat/completions` (stream and non-stream; reasoning, tool calls, GLM web_search, Kimi `$web_search`)
 * - `POST /web_search` (GLM standalone search)
 * - `POST /files`, `GET /files`, `GET /files/:id`, `GET /files/:id/content`, `DELETE /files/:id`
 * - `GET /models`
 */
import http from "node:http";
import type { Socket } from "node:net";
import type { FakeProvider, FakeProviderOptions, FakeRule, RecordedRequest } from "./fake-types.js";
import { createFileStore, type FileStore } from "./files-endpoint.js";
import { createRequestHandler } from "./request-handler.js";
import { createRequestQueue, type RequestQueue } from "./request-queue.js";
import { sleep } from "./sleep.js";

export type {
  FakeFault,
  FakeProvider,
  FakeProviderOptions,
  FakeReply,
  FakeRule,
  RecordedRequest,
} from "./fake-types.js";

/** What close() must stop: the server, its sockets, the timers and the requests in flight. */
interface Lifecycle {
  server: http.Server;
  queue: RequestQueue;
  sockets: Set<Socket>;
  timers: Set<NodeJS.Timeout>;
  inflight: Set<AbortController>;
  closing: boolean;
  closePromise?: Promise<void>;
}

/**
 * Starts a fake OpenAI-compatible provider on `host` (default 127.0.0.1) and `port` (default 0: a free one).
 * All state (rules, recorded requests, files, timers, sockets) lives in the returned instance.
 */
export function startFakeProvider(options: FakeProviderOptions = {}): Promise<FakeProvider> {
  const host = options.host ?? "127.0.0.1";
  const queue = createRequestQueue(options.defaultDelayMs ?? 0);
  const files = createFileStore();
  const timers = new Set<NodeJS.Timeout>();
  const inflight = new Set<AbortController>();
  const life: Lifecycle = {
    server: http.createServer(),
    queue,
    sockets: new Set(),
    timers,
    inflight,
    closing: false,
  };
  life.server.on(
    "request",
    createRequestHandler({
      queue,
      files,
      wait: (ms, signal) => sleep(timers, ms, signal),
      inflight,
      isClosing: () => life.closing,
    }),
  );
  trackSockets(life.server, life.sockets);
  return listen(life.server, options.port ?? 0, host).then((url) => providerApi(url, life, files));
}

/** Keeps the open sockets in `sockets` (close() destroys them); a client error destroys its socket. */
function trackSockets(server: http.Server, sockets: Set<Socket>): void {
  server.on("connection", (socket: Socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => undefined);
  });
  server.on("clientError", (_error, socket) => socket.destroy());
}

/** Listens on `port` of `host`; resolves the base URL ("http://HOST:PORT", a wildcard host shown as 127.0.0.1). */
function listen(server: http.Server, port: number, host: string): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    const onError = (error: Error): void => reject(error);
    server.once("error", onError);
    server.listen(port, host, () => {
      server.off("error", onError);
      const address = server.address();
      const bound = typeof address === "object" && address !== null ? address.port : port;
      const shownHost = host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host;
      resolve(`http://${shownHost.includes(":") ? `[${shownHost}]` : shownHost}:${bound}`);
    });
  });
}

/** Aborts everything in flight, clears the timers, rejects the waiters, destroys the sockets; idempotent. */
function close(life: Lifecycle): Promise<void> {
  if (life.closePromise) return life.closePromise;
  life.closing = true;
  life.closePromise = new Promise<void>((resolve) => {
    for (const controller of life.inflight) controller.abort();
    life.inflight.clear();
    for (const timer of life.timers) clearTimeout(timer);
    life.timers.clear();
    life.queue.close();
    for (const socket of life.sockets) socket.destroy();
    life.sockets.clear();
    life.server.close(() => resolve());
    life.server.closeAllConnections();
  });
  return life.closePromise;
}

/** The scripting API of one started instance. */
function providerApi(url: string, life: Lifecycle, files: FileStore): FakeProvider {
  const { queue } = life;
  return {
    url,
    requests: queue.requests,
    enqueue(...newRules: FakeRule[]): void {
      queue.enqueue(...newRules);
    },
    setDefaultDelay(ms: number): void {
      queue.setDefaultDelay(ms);
    },
    chatRequests(): RecordedRequest[] {
      return queue.chatRequests();
    },
    waitForRequests(count: number, timeoutMs?: number): Promise<void> {
      return queue.waitForRequests(count, timeoutMs);
    },
    reset(): void {
      queue.reset();
      files.reset();
    },
    close: () => close(life),
  };
}
