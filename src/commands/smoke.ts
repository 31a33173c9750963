/** `exai smoke`: every tool against the configured providers, sequentially then in a parallel batch. */
import type { Command } from "commander";
import { err, fail, out, parseCount, readConfig } from "./common.js";

/** Registers `exai smoke` on `program`; it exits 1 on any failure. */
export function registerSmokeCommand(program: Command): void {
  program
    .command("smoke")
    .description(
      "verify every tool against the configured providers: sequential, then a parallel batch; exit 1 on any failure",
    )
    .option("--json", "machine-readable report")
    .option("--parallel <n>", "size of the parallel batch (0 = none)", parseCount, 6)
    .option("--tools <names>", "comma list of tools (default: every tool of the profile)")
    .action(async (options: { json?: boolean; parallel: number; tools?: string }) => {
      try {
        const { runSmoke, formatSmokeTable } = await import("../smoke/smoke.js");
        // Calls run on unref'd timers by design; this handle keeps the process alive meanwhile.
        const keepAlive = setInterval(() => undefined, 60_000);
        try {
          const report = await runSmoke(readConfig(), {
            parallel: options.parallel,
            ...(options.tools
              ? {
                  tools: options.tools
                    .split(",")
                    .map((name) => name.trim())
                    .filter(Boolean),
                }
              : {}),
            onProgress: (line) => err(line),
          });
          out(options.json ? JSON.stringify(report, null, 2) : formatSmokeTable(report));
          if (!report.ok) process.exitCode = 1;
        } finally {
          clearInterval(keepAlive);
        }
      } catch (error) {
        fail(error);
      }
    });
}
