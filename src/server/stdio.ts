/**
 * `exai stdio`: one MCP client on stdin/stdout, tools in-process. stdout carries only the
 * protocol; logs go to stderr and the log file. Closing stdin (the client went away) or SIGTERM
 * aborts what is in flight and exits.
 */
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import type { Config } from "../config/load.js";
import { ExaiError } from "../errors.js";
import { createRuntime } from "../runtime/runtime.js";
import { createMcpServer } from "./mcp.js";

/** Runs the stdio server until the client disconnects. */
export async function runStdioServer(config: Config): Promise<void> {
  const runtime = createRuntime(config, { mode: "stdio" });
  const server = createMcpServer(runtime, { sessionId: "stdio" });
  const transport = new StdioServerTransport();
  let stopping = false;
  const stop = async (reason: string) => {
    if (stopping) return;
    stopping = true;
    runtime.logger.info({ reason }, "exai stdio stopping");
    runtime.executor.abortAll(new ExaiError("CANCELLED", `the server stopped (${reason})`));
    await server.close().catch(() => undefined); // already closed by the peer: nothing to do
    await runtime.close();
    process.exit(0);
  };
  server.onclose = () => void stop("client disconnected");
  process.stdin.once("end", () => void stop("stdin closed"));
  process.once("SIGTERM", () => void stop("SIGTERM"));
  process.once("SIGINT", () => void stop("SIGINT"));
  await server.connect(transport);
  runtime.logger.info(
    {
      tools: runtime.tools.length,
      providers: runtime.registry.configuredProviders(),
      profile: config.tools.profile,
    },
    "exai stdio ready",
  );
}
