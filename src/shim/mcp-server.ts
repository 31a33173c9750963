/**
 * The shim's MCP server (stdio side): tools/list and tools/call forwarded to the daemon over the
 * link (./link.ts). tools/call → call_tool with a fresh request_id, the trace_id from `_meta` (or a
 * new one), deadline_ms = what is left of the shim's own budget (EXAI_SHIM_RPC_TIMEOUT) minus a
 * transit margin, and `roots` = the file sandbox of this client (./roots.ts). Daemon progress
 * frames become `notifications/progress`; MCP cancellation becomes `{op:"cancel"}`; OVER_CAPACITY
 * is retried with full jitter (at least retry_after) up to config.admission.retries (3) times inside
 * the deadline (./backoff.ts). The shim's ceiling only fires when the daemon never answers (frozen, overloaded).
 */
import { randomUUID } from "node:crypto";
import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import type { RequestHandlerExtra } from "@modelcontextprotocol/sdk/shared/protocol.js";
import {
  CallToolRequestSchema,
  ListToolsRequestSchema,
  type CallToolRequest,
  type CallToolResult,
  type ServerNotification,
  type ServerRequest,
  type Tool,
} from "@modelcontextprotocol/sdk/types.js";
import type { Config } from "../config/load.js";
import { ExaiError, formatSeconds, toExaiError } from "../base/errors.js";
import { createLogger, type Logger } from "../base/logging.js";
import { SERVER_NAME, VERSION } from "../base/version.js";
import { now, startDeadline } from "../timing/deadline.js";
import type { ProgressFrame } from "../mcp/frames.js";
import { SERVER_INSTRUCTIONS, traceIdFromMeta } from "../mcp/server.js";
import { socketPath as socketPathIn } from "../mcp/trust.js";
import { createExchange, errorResult, resultFromFrame, transitMarginMs, type Phase } from "./exchange.js";
import { createDaemonLink, DaemonGone, type DaemonLink, type LinkOptions } from "./link.js";
import { listToolsWithRetry, retryOverCapacity } from "./backoff.js";
import { createRootsSource } from "./roots.js";

export interface ShimOptions extends LinkOptions {
  logger?: Logger;
  /** Source of randomness in [0, 1) for jitter (tests). */
  random?: () => number;
}

export interface ShimServer {
  server: Server;
  link: DaemonLink;
  close(): Promise<void>;
}

/** Builds the shim's MCP server (not yet connected to a transport). */
export function createShimServer(config: Config, options: ShimOptions = {}): ShimServer {
  const logger = options.logger ?? createLogger({ level: config.logLevel, base: { mode: "shim" } });
  const link = createDaemonLink(config, options, logger);
  const budgetMs = config.timeouts.shimMs;
  const server = new Server(
    { name: SERVER_NAME, version: VERSION },
    { capabilities: { tools: { listChanged: false } }, instructions: SERVER_INSTRUCTIONS },
  );
  const rootsForCall = createRootsSource(server, config, logger);

  let tools: Tool[] | undefined;
  server.setRequestHandler(ListToolsRequestSchema, async (_request, extra) => {
    if (tools) return { tools };
    const deadline = startDeadline(budgetMs, "shim", extra.signal);
    try {
      tools = await listToolsWithRetry(
        {
          deadlineAt: deadline.at,
          signal: deadline.signal,
          ...(options.random ? { random: options.random } : {}),
        },
        async () => {
          const socket = await link.connect({
            spawn: true,
            deadlineAt: deadline.at,
            signal: deadline.signal,
          });
          return link.listTools(socket, deadline.signal);
        },
      );
      return { tools };
    } catch (error) {
      const failure = toExaiError(error, "shim");
      throw new Error(`exai shim: could not list the daemon's tools: ${failure.code}: ${failure.message}`);
    } finally {
      deadline.dispose();
    }
  });

  const callTool = createCallToolHandler({ config, link, logger, rootsForCall, random: options.random });
  server.setRequestHandler(CallToolRequestSchema, callTool);

  return {
    server,
    link,
    async close() {
      await link.close();
      await server.close().catch(() => undefined); // already closed by the peer: nothing to do
    },
  };
}

interface CallToolDeps {
  config: Config;
  link: DaemonLink;
  logger: Logger;
  rootsForCall(signal: AbortSignal): Promise<string[]>;
  random: (() => number) | undefined;
}

type CallToolHandler = (
  request: CallToolRequest,
  extra: RequestHandlerExtra<ServerRequest, ServerNotification>,
) => Promise<CallToolResult>;

/** The tools/call handler: one call forwarded to the daemon, OVER_CAPACITY retried in the deadline. */
function createCallToolHandler(deps: CallToolDeps): CallToolHandler {
  const { config, link, logger } = deps;
  const random = deps.random ?? Math.random;
  const budgetMs = config.timeouts.shimMs;
  const marginMs = transitMarginMs(budgetMs);
  const exchange = createExchange({ link, budgetMs, maxFrameBytes: config.limits.messageBytes, logger });
  const describeFailure = createFailureDescriber(config, link, logger);
  const withNote = createConfigNote(link);

  return async (request, extra) => {
    const started = now();
    const meta = request.params._meta as Record<string, unknown> | undefined;
    const traceId = traceIdFromMeta(meta) ?? randomUUID().replace(/-/g, "");
    const progressToken = meta?.progressToken as string | number | undefined;
    const deadline = startDeadline(budgetMs, "shim", extra.signal);
    let lastProgress = 0;
    const onProgress =
      progressToken === undefined
        ? undefined
        : (frame: ProgressFrame) => {
            // Elapsed ms on the shim's monotonic clock: strictly increasing even across re-sends.
            lastProgress = Math.max(lastProgress + 1, Math.round(now() - started));
            extra
              .sendNotification({
                method: "notifications/progress",
                params: { progressToken, progress: lastProgress, total: budgetMs, message: frame.message },
              })
              .catch((error: unknown) => logger.debug({ err: error }, "progress notification not delivered"));
          };
    const phase: Phase = { acked: false, sent: false };
    try {
      const roots = await deps.rootsForCall(deadline.signal);
      const answer = await retryOverCapacity(
        {
          retries: config.admission.retries,
          deadlineAt: deadline.at,
          reserveMs: marginMs,
          signal: deadline.signal,
          random,
          onBackoff: (delay, retry) =>
            logger.debug(
              { trace_id: traceId, retry, delay_ms: Math.round(delay) },
              "OVER_CAPACITY; retrying",
            ),
        },
        () => {
          phase.acked = false;
          phase.sent = false;
          phase.daemonId = undefined;
          return exchange(
            {
              op: "call_tool",
              request_id: randomUUID(),
              name: request.params.name,
              arguments: request.params.arguments ?? {},
              trace_id: traceId,
              progress: progressToken !== undefined,
              roots,
            },
            deadline,
            onProgress,
            phase,
          );
        },
      );
      return withNote(resultFromFrame(answer, traceId));
    } catch (error) {
      return withNote(errorResult(describeFailure(error, phase, traceId).toPayload(traceId)));
    } finally {
      deadline.dispose();
    }
  };
}

/** The error a failed call ends with: the daemon gone, the shim's ceiling, or the error itself. */
function createFailureDescriber(config: Config, link: DaemonLink, logger: Logger) {
  const budgetMs = config.timeouts.shimMs;
  const budgetText = formatSeconds(budgetMs / 1000);
  const healthUrl = `\`curl --unix-socket ${socketPathIn(config.dataDir)} http://localhost/health\``;
  return (error: unknown, phase: Phase, traceId: string): ExaiError => {
    if (error instanceof DaemonGone) {
      logger.warn({ trace_id: traceId }, "the daemon went away during a call");
      // INTERNAL (retryable), not CANCELLED: agents read CANCELLED as "the user cancelled".
      return new ExaiError(
        "INTERNAL",
        `the exai daemon at ${link.url} went away during the call (reconnect refused: ${error.message}); the call did not complete and its result is lost. Retry it: the next call starts a new daemon automatically (or run \`exai daemon\`; inspect ${healthUrl} and EXAI_DATA_DIR/logs/exai.log)`,
        { retryable: true, details: { layer: "shim", reason: "daemon_gone", daemon_url: link.url } },
      );
    }
    const failure = toExaiError(error, "shim");
    if (failure.code === "TIMEOUT" && failure.details.layer === "shim") {
      const message = phase.sent
        ? `the daemon did not answer within the shim ceiling of ${budgetText} (EXAI_SHIM_RPC_TIMEOUT)${phase.acked ? " although it accepted the call" : ""}; it may be frozen (stopped) or overloaded. Check ${healthUrl} and EXAI_DATA_DIR/logs/exai.log, or stop the daemon process: the next call starts a new one`
        : `could not reach the exai daemon at ${link.url} within the shim ceiling of ${budgetText} (EXAI_SHIM_RPC_TIMEOUT); it may be frozen (stopped) or overloaded. Check ${healthUrl}, or stop the daemon process: the next call starts a new one`;
      logger.warn({ trace_id: traceId, acked: phase.acked }, "shim ceiling reached");
      return new ExaiError("TIMEOUT", message, {
        retryable: true,
        details: { layer: "shim", budget_s: budgetMs / 1000, daemon_url: link.url },
      });
    }
    return failure;
  };
}

/**
 * Appends to error results, while this shim's provider settings differ from the daemon's, which
 * variables differ and where the daemon's configuration comes from.
 */
function createConfigNote(link: DaemonLink): (result: CallToolResult) => CallToolResult {
  const configNote = (): string | undefined => {
    const mismatch = link.configMismatch();
    if (!mismatch || mismatch.variables.length === 0) return undefined;
    const where =
      mismatch.daemonFile !== undefined
        ? `from ${mismatch.daemonFile}`
        : `from its own environment (no configuration file${mismatch.searched !== undefined ? `; it looked for ${mismatch.searched}` : ""})`;
    return `Note: this client's environment sets ${mismatch.variables.join(", ")} differently from the shared daemon, which uses its configuration ${where} and ignores the client's provider variables; put the provider settings in that file (the daemon re-reads it on SIGHUP or when a shim reports a changed file).`;
  };
  return (result) => {
    const note = configNote();
    if (!result.isError || note === undefined) return result;
    const payload = { ...(result.structuredContent ?? {}) } as Record<string, unknown>;
    payload.message = `${typeof payload.message === "string" ? payload.message : ""} ${note}`.trim();
    return errorResult(payload);
  };
}
