/**
 * The MCP face of the executor: `tools/list` and `tools/call` on the official SDK's low-level
 * Server, with progress notifications (when the request carries a progressToken), cancellation
 * (the SDK aborts `extra.signal` on `notifications/cancelled` and on disconnect), trace_id from
 * `_meta`, and the client's roots as the file sandbox. One Server per client connection; the
 * runtime behind it is shared.
 */
import { fileURLToPath } from "node:url";
import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import {
  CallToolRequestSchema,
  ListToolsRequestSchema,
  RootsListChangedNotificationSchema,
  type CallToolResult,
} from "@modelcontextprotocol/sdk/types.js";
import type { TimeoutLayer } from "../base/errors.js";
import type { CallOutcome, Executor } from "../runtime/executor.js";
import type { Runtime } from "../runtime/runtime.js";
import { listTools } from "../tools/framework.js";

export { listTools };
import { SERVER_NAME, VERSION } from "../base/version.js";

export const SERVER_INSTRUCTIONS =
  "exai lets you consult other models (GLM, Kimi, OpenAI-compatible). Workflow tools (codereview, debug, analyze, thinkdeep…) are step-by-step: you investigate, report findings per step, and the final step asks an expert model. Pass absolute file paths. Reuse continuation_id to keep context.";

/** Converts an executor outcome to an MCP tool result (JSON text + structuredContent, or isError). */
export function toCallToolResult(outcome: CallOutcome): CallToolResult {
  const payload = outcome.ok ? (outcome.result ?? {}) : (outcome.error as unknown as Record<string, unknown>);
  return {
    // Compact JSON: the text lands in the agent's context, where indentation only costs tokens.
    content: [{ type: "text", text: JSON.stringify(payload) }],
    structuredContent: payload,
    ...(outcome.ok ? {} : { isError: true }),
  };
}

/** trace_id from `_meta` (`trace_id`, or the trace-id field of a W3C `traceparent`). */
export function traceIdFromMeta(meta: Record<string, unknown> | undefined): string | undefined {
  if (!meta) return undefined;
  if (typeof meta.trace_id === "string" && /^[\w-]{8,64}$/.test(meta.trace_id)) return meta.trace_id;
  const traceparent = meta.traceparent;
  if (typeof traceparent === "string") {
    const match = /^[\da-f]{2}-([\da-f]{32})-[\da-f]{16}-[\da-f]{2}$/i.exec(traceparent.trim());
    if (match) return match[1]?.toLowerCase();
  }
  return undefined;
}

export interface McpServerOptions {
  /** Admission session (one per client connection). */
  sessionId: string;
  /** Ceiling of the layer hosting this server (daemon: EXAI_WS_CALL_TIMEOUT). */
  ceiling?: { layer: TimeoutLayer; ms: number };
  executor?: Executor;
}

/**
 * Creates an MCP server bound to a runtime. Connect it to any SDK transport. Given a promise of
 * the runtime (exai stdio, which loads tools and providers while the client initializes), the
 * server answers `initialize` at once and `tools/list` / `tools/call` once the runtime is ready.
 */
export function createMcpServer(
  runtimeOrReady: Runtime | Promise<Runtime>,
  options: McpServerOptions,
): Server {
  let bound: { runtime: Runtime; executor: Executor; tools: ReturnType<typeof listTools> } | undefined;
  const bind = (runtime: Runtime) => {
    const executor = options.executor ?? runtime.executor;
    bound = { runtime, executor, tools: listTools(executor.tools()) };
    return bound;
  };
  const ready =
    runtimeOrReady instanceof Promise ? runtimeOrReady.then(bind) : Promise.resolve(bind(runtimeOrReady));
  // A runtime that fails to load is reported by whoever passed the promise; requests get the error.
  ready.catch(() => undefined);
  const server = new Server(
    { name: SERVER_NAME, version: VERSION },
    { capabilities: { tools: { listChanged: false } }, instructions: SERVER_INSTRUCTIONS },
  );
  let roots: string[] | undefined;
  let rootsLoaded: Promise<void> | undefined;
  const loadRoots = () => {
    rootsLoaded ??= (async () => {
      if (!server.getClientCapabilities()?.roots) return;
      try {
        const result = await server.listRoots(undefined, { timeout: 2000 });
        roots = result.roots
          .filter((root) => root.uri.startsWith("file://"))
          .map((root) => fileURLToPath(root.uri));
      } catch (error) {
        // A client that advertises roots but fails to list them: fall back to the configured roots.
        bound?.runtime.logger.warn(
          { err: error },
          "could not list the client's roots; using EXAI_ALLOWED_ROOTS / cwd",
        );
      }
    })();
    return rootsLoaded;
  };
  server.setNotificationHandler(RootsListChangedNotificationSchema, async () => {
    rootsLoaded = undefined;
    await loadRoots();
  });
  server.setRequestHandler(ListToolsRequestSchema, async () => ({ tools: (bound ?? (await ready)).tools }));
  server.setRequestHandler(CallToolRequestSchema, async (request, extra) => {
    const { runtime, executor } = bound ?? (await ready);
    await loadRoots();
    const meta = request.params._meta as Record<string, unknown> | undefined;
    const progressToken = meta?.progressToken;
    const outcome = await executor.call({
      tool: request.params.name,
      arguments: request.params.arguments ?? {},
      traceId: traceIdFromMeta(meta),
      sessionId: options.sessionId,
      signal: extra.signal,
      retryOverCapacity: true,
      ...(options.ceiling ? { ceiling: options.ceiling } : {}),
      ...(roots && roots.length > 0 ? { roots } : {}),
      ...(progressToken !== undefined
        ? {
            onProgress: (event) => {
              extra
                .sendNotification({
                  method: "notifications/progress",
                  params: {
                    progressToken,
                    progress: event.progress,
                    total: event.total,
                    message: event.message,
                  },
                })
                .catch((error: unknown) =>
                  runtime.logger.debug({ err: error }, "progress notification not delivered"),
                );
            },
          }
        : {}),
    });
    return toCallToolResult(outcome);
  });
  return server;
}
