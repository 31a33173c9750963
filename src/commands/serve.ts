/**
 * The serving commands: `exai stdio` (tools in-process), `exai daemon` (the shared daemon) and
 * `exai shim` (stdio forwarded to the daemon). Each imports its transport only when it runs, so
 * `exai stdio` never loads the daemon, WebSocket or metrics code.
 */
import type { Command } from "commander";
import { processEnvironment } from "../config/environment.js";
import { VERSION } from "../base/version.js";
import { err, fail, parsePort, readConfig } from "./common.js";

/** Registers `exai stdio` on `program`: MCP over stdio with the tools in this process. */
export function registerStdioCommand(program: Command): void {
  program
    .command("stdio")
    .description("serve MCP over stdio, tools in-process (the default for MCP clients)")
    .action(async () => {
      try {
        const { runStdioServer } = await import("../server/stdio.js");
        await runStdioServer(readConfig());
      } catch (error) {
        fail(error);
      }
    });
}

/** Registers `exai daemon` on `program`: the shared daemon, with `--host` / `--port` overrides. */
export function registerDaemonCommand(program: Command): void {
  program
    .command("daemon")
    .description("run the shared daemon: WebSocket for shims, /mcp (Streamable HTTP), /health, /metrics")
    .option("--host <host>", "listen address (default EXAI_WS_HOST)")
    .option("--port <port>", "port (default EXAI_WS_PORT; 0 = any free port)", parsePort)
    .action(async (options: { host?: string; port?: number }) => {
      try {
        const { runDaemon } = await import("../daemon/server.js");
        const daemon = await runDaemon(readConfig(), {
          ...(options.host !== undefined ? { host: options.host } : {}),
          ...(options.port !== undefined ? { port: options.port } : {}),
          // Test-only endpoint POST /debug/drop-connections (chaos tests of the shim's reconnect).
          testHooks: processEnvironment().EXAI_DAEMON_TEST_HOOKS === "1",
          // Re-read on SIGHUP and when a shim reports another configuration file.
          reloadConfig: readConfig,
        });
        const http = daemon.url.replace(/^ws:/, "http:");
        err(
          daemon.port !== 0
            ? `exai daemon ${VERSION} listening on ${daemon.socketPath} and ${daemon.url} (MCP: ${http}mcp, ${http}health, ${http}metrics; token required, see exai config --client claude --transport http)`
            : `exai daemon ${VERSION} listening on ${daemon.socketPath} only (the TCP port could not be bound; see the log)`,
        );
      } catch (error) {
        fail(error);
      }
    });
}

/**
 * Registers `exai shim` on `program`: MCP over stdio forwarded to the daemon. `cliPath` returns the
 * absolute path of dist/cli.js (the shim starts the daemon with it when none answers).
 */
export function registerShimCommand(program: Command, cliPath: () => string): void {
  program
    .command("shim")
    .description("serve MCP over stdio, forwarding to the shared daemon (started when none answers)")
    .action(async () => {
      try {
        const { runShim } = await import("../shim/shim.js");
        await runShim(readConfig(), { cliPath: cliPath(), daemonEnv: processEnvironment() });
      } catch (error) {
        fail(error);
      }
    });
}
