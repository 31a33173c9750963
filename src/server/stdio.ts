/**
 * `exai stdio`: one MCP client on stdin/stdout, tools in-process. stdout carries only the
 * protocol; logs go to stderr and the log file. Closing stdin (the client went away) or SIGTERM
 * aborts what is in flight and exits. A message larger than EXAI_MAX_MESSAGE_MB is answered with
 * a JSON-RPC error (see ./stdio-transport.ts); one that cannot be answered ends the process with
 * exit code 1 and a line on stderr, never a silent exit 0.
 */
import type { Config } from "../config/load.js";
import { ExaiError } from "../base/errors.js";
import type { Runtime } from "../runtime/runtime.js";
import { createMcpServer } from "../mcp/server.js";
import { BoundedStdioServerTransport, oversizeMessage } from "../mcp/stdio-transport.js";

/**
 * Runs the stdio server until the client disconnects. The runtime (tools, providers, store) is
 * imported and built while the transport already answers `initialize`; `tools/list` and
 * `tools/call` wait for it. @throws what building the runtime throws (after closing the server).
 */
export async function runStdioServer(config: Config): Promise<void> {
  const loading: Promise<Runtime> = import("../runtime/runtime.js").then(({ createRuntime }) =>
    createRuntime(config, { mode: "stdio" }),
  );
  let runtime: Runtime | undefined;
  const server = createMcpServer(loading, { sessionId: "stdio" });
  const transport = new BoundedStdioServerTransport({
    maxMessageBytes: config.limits.messageBytes,
    onOversize: (event) => {
      if (!event.answered) return; // reported below as the reason to stop
      runtime?.logger.warn(
        { bytes: event.bytes, limit_bytes: event.limitBytes, id: event.id, notification: event.notification },
        `rejected a stdin message: ${oversizeMessage(event.bytes, event.limitBytes)}`,
      );
    },
  });
  let stopping = false;
  const stop = async (reason: string) => {
    if (stopping) return;
    stopping = true;
    const failure = transport.failure;
    // Stopping before the runtime finished loading: wait for it, so its store and log close cleanly.
    const loaded = runtime ?? (await loading.catch(() => undefined));
    if (failure)
      loaded?.logger.error({ code: failure.code, ...failure.details }, `exai stdio: ${failure.message}`);
    else loaded?.logger.info({ reason }, "exai stdio stopping");
    loaded?.executor.abortAll(new ExaiError("CANCELLED", `the server stopped (${reason})`));
    await server.close().catch(() => undefined); // already closed by the peer: nothing to do
    await loaded?.close();
    process.exit(failure ? 1 : 0);
  };
  server.onclose = () => void stop(transport.failure ? "unanswerable message" : "client disconnected");
  process.stdin.once("end", () => void stop("stdin closed"));
  process.once("SIGTERM", () => void stop("SIGTERM"));
  process.once("SIGINT", () => void stop("SIGINT"));
  await server.connect(transport);
  try {
    runtime = await loading;
  } catch (error) {
    stopping = true;
    await server.close().catch(() => undefined);
    process.stdin.destroy();
    throw error;
  }
  runtime.logger.info(
    {
      tools: runtime.tools.length,
      providers: runtime.registry.configuredProviders(),
      profile: config.tools.profile,
    },
    "exai stdio ready",
  );
}
