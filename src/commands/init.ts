/** `exai init`: writes the user configuration file (0600) with the provider keys. */
import type { Command } from "commander";
import { processEnvironment } from "../config/environment.js";
import { fail, out } from "./common.js";

/** Registers `exai init` on `program`; it prompts for missing keys on a terminal. */
export function registerInitCommand(program: Command): void {
  program
    .command("init")
    .description("write the user configuration file (0600) with your provider keys; prompts on a terminal")
    .option("--glm-key <key>", "GLM (Z.ai) API key")
    .option("--kimi-key <key>", "Kimi (Moonshot) API key")
    .option("--custom-url <url>", "an OpenAI-compatible endpoint, e.g. http://localhost:11434/v1")
    .option("--custom-model <names>", "model name(s) the custom endpoint serves (comma list)")
    .option("--custom-key <key>", "API key of the custom endpoint, if it needs one")
    .option("--force", "overwrite an existing file")
    .action(
      async (options: {
        glmKey?: string;
        kimiKey?: string;
        customUrl?: string;
        customModel?: string;
        customKey?: string;
        force?: boolean;
      }) => {
        try {
          const { runInit } = await import("../config/init.js");
          const written = await runInit({
            env: processEnvironment(),
            values: {
              ...(options.glmKey !== undefined ? { GLM_API_KEY: options.glmKey } : {}),
              ...(options.kimiKey !== undefined ? { KIMI_API_KEY: options.kimiKey } : {}),
              ...(options.customUrl !== undefined ? { CUSTOM_API_URL: options.customUrl } : {}),
              ...(options.customModel !== undefined ? { CUSTOM_MODEL_NAME: options.customModel } : {}),
              ...(options.customKey !== undefined ? { CUSTOM_API_KEY: options.customKey } : {}),
            },
            force: options.force ?? false,
            input: process.stdin,
            output: process.stderr,
          });
          out(`wrote ${written.path} (mode 0600): ${written.variables.join(", ")}`);
          out(`next: exai config --client claude   (or codex, cursor, vscode) prints how to register exai`);
        } catch (error) {
          fail(error);
        }
      },
    );
}
