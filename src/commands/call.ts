/** `exai call`: one tool call in-process, its result JSON on stdout (exit 1 when the call fails). */
import type { Command } from "commander";
import { ExaiError } from "../base/errors.js";
import { err, fail, out, readConfig } from "./common.js";

/** Registers `exai call <tool> --args <json>` on `program`. */
export function registerCallCommand(program: Command): void {
  program
    .command("call")
    .description("run one tool call in-process and print its result JSON")
    .argument("<tool>", "tool name, e.g. chat")
    .option("--args <json>", "tool arguments as JSON", "{}")
    .action(async (tool: string, options: { args: string }) => {
      let args: unknown;
      try {
        args = JSON.parse(options.args);
      } catch (error) {
        fail(
          new ExaiError(
            "INVALID_ARGUMENT",
            `--args: not valid JSON (${(error as Error).message}); pass e.g. --args '{"prompt":"hi"}'`,
          ),
        );
        return;
      }
      try {
        const { createRuntime } = await import("../runtime/runtime.js");
        const runtime = createRuntime(readConfig(), { mode: "stdio" });
        // Every timer of a call is unref()ed by design; this handle keeps the process alive until the call ends.
        const keepAlive = setInterval(() => undefined, 60_000);
        try {
          const outcome = await runtime.executor.call({
            tool,
            arguments: args,
            sessionId: "cli",
            retryOverCapacity: true,
            onProgress: (event) => err(`… ${event.message}`),
          });
          out(JSON.stringify(outcome.ok ? outcome.result : outcome.error, null, 2));
          if (!outcome.ok) process.exitCode = 1;
        } finally {
          clearInterval(keepAlive);
          await runtime.close();
        }
      } catch (error) {
        fail(error);
      }
    });
}
