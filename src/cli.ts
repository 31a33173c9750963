#!/usr/bin/env node
/**
 * The `exai` command (SPEC §2). This is the only module that reads `argv`, and it takes the
 * environment from src/config (`processEnvironment`); everything below receives a parsed Config.
 *
 * Exit codes: 0 ok, 1 a tool/smoke failure, 2 invalid configuration or usage.
 *
 * Each command imports its own modules when it runs (`await import()`): `exai stdio` never loads
 * the daemon, WebSocket or metrics code, and `exai config` / `exai init` load no tools at all.
 * The commands live in src/commands/, one module per concern, each registering itself on the
 * program; `fake-provider` stays here, the only module that may start the fake provider's server.
 */
import { realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Command } from "commander";
import { VERSION } from "./base/version.js";
import { registerCallCommand } from "./commands/call.js";
import { fail, parsePort } from "./commands/common.js";
import { registerConfigCommand } from "./commands/config.js";
import { registerInitCommand } from "./commands/init.js";
import { registerDaemonCommand, registerShimCommand, registerStdioCommand } from "./commands/serve.js";
import { registerSmokeCommand } from "./commands/smoke.js";

export { clientSnippet, type ClientLaunch } from "./commands/config.js";

const cliPath = () => realpathSync(fileURLToPath(import.meta.url));

/** Builds the command-line program. */
export function buildProgram(): Command {
  const program = new Command();
  program
    .name("exai")
    .description("MCP server: consult GLM, Kimi and OpenAI-compatible models from coding agents")
    .version(VERSION);

  registerStdioCommand(program);
  registerDaemonCommand(program);
  registerShimCommand(program, cliPath);
  registerConfigCommand(program, cliPath);
  registerInitCommand(program);
  registerCallCommand(program);
  registerSmokeCommand(program);

  program
    .command("fake-provider")
    .description("run the fake OpenAI-compatible provider used by the tests (for demos)")
    .option("--port <port>", "port (0 = any free port)", parsePort, 0)
    .option("--host <host>", "address", "127.0.0.1")
    .option("--delay-ms <ms>", "delay of every reply", (value) => Number(value), 0)
    .action(async (options: { port: number; host: string; delayMs: number }) => {
      const { runFakeProviderCli } = await import("./testing/server.js");
      const fake = await runFakeProviderCli({
        port: options.port,
        host: options.host,
        delayMs: options.delayMs,
      });
      const stop = () => void fake.close().then(() => process.exit(0));
      process.once("SIGINT", stop);
      process.once("SIGTERM", stop);
    });

  return program;
}

const invokedDirectly = (() => {
  try {
    return process.argv[1] !== undefined && realpathSync(process.argv[1]) === cliPath();
  } catch {
    // argv[1] missing or unreadable: we were imported, not run.
    return false;
  }
})();

if (invokedDirectly) {
  buildProgram()
    .parseAsync(process.argv)
    .catch((error: unknown) => fail(error));
}
