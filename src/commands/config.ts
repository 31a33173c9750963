/**
 * `exai config`: the resolved configuration and timeout table (text or JSON), the configuration
 * variables as markdown, and the snippet that registers exai in an MCP client (stdio or the
 * daemon's /mcp over HTTP). Loads no tools.
 */
import type { Command } from "commander";
import type { Config } from "../config/load.js";
import { processEnvironment } from "../config/environment.js";
import { summary } from "../config/timeouts.js";
import { renderConfigTable } from "../config/docs.js";
import { ExaiError } from "../base/errors.js";
import { VERSION } from "../base/version.js";
import { fail, out, readConfig } from "./common.js";

/** How an MCP client starts exai: absolute paths, so it works from any working directory and PATH. */
export interface ClientLaunch {
  /** Absolute path of the node executable. */
  node: string;
  /** Absolute path of dist/cli.js. */
  cli: string;
  /** EXAI_ENV_FILE to pass along when it was set explicitly (the client's environment lacks it). */
  envFile?: string;
  /** False when no user-level configuration file exists yet (the snippet says to run exai init). */
  configured: boolean;
}

/** The snippet that registers exai in an MCP client with a tool timeout ≥ the client timeout. */
export function clientSnippet(client: string, config: Config, launch: ClientLaunch): string {
  const clientS = config.timeouts.clientMs / 1000;
  const seconds = Math.ceil(clientS);
  const env: Record<string, string> = launch.envFile ? { EXAI_ENV_FILE: launch.envFile } : {};
  const hasEnv = Object.keys(env).length > 0;
  const args = [launch.cli, "stdio"];
  const shellQuote = (word: string) =>
    /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, "'\\''")}'`;
  const lines = (comment: string, body: string[]) => [
    ...(launch.configured
      ? []
      : [
          `${comment} No configuration file yet: run \`exai init\` first (it writes ${config.source.searched}).`,
        ]),
    ...body,
  ];
  switch (client) {
    case "claude":
      return lines("#", [
        `# Claude Code: register the server, then start Claude Code with a tool timeout ≥ ${clientS} s`,
        `claude mcp add exai ${Object.entries(env)
          .map(([name, value]) => `-e ${shellQuote(`${name}=${value}`)} `)
          .join("")}-- ${[launch.node, ...args].map(shellQuote).join(" ")}`,
        `export MCP_TOOL_TIMEOUT=${seconds * 1000}   # ms; put it in your shell profile`,
      ]).join("\n");
    case "codex":
      return lines("#", [
        `# Codex CLI: ~/.codex/config.toml (tool_timeout_sec ≥ ${clientS} s; Codex's default of 60 s is too short)`,
        `[mcp_servers.exai]`,
        `command = ${JSON.stringify(launch.node)}`,
        `args = ${JSON.stringify(args)}`,
        ...(hasEnv
          ? [
              `env = { ${Object.entries(env)
                .map(([name, value]) => `${name} = ${JSON.stringify(value)}`)
                .join(", ")} }`,
            ]
          : []),
        `startup_timeout_sec = 20`,
        `tool_timeout_sec = ${seconds}`,
        // `codex exec` does not wait for optional servers: without this the model never sees exai's tools.
        `required = true`,
      ]).join("\n");
    case "cursor":
      return lines("//", [
        `// Cursor: ~/.cursor/mcp.json (Cursor has no per-tool timeout setting; exai finishes or fails within ${config.timeouts.workflowToolMs / 1000} s per workflow call)`,
        JSON.stringify(
          { mcpServers: { exai: { command: launch.node, args, ...(hasEnv ? { env } : {}) } } },
          null,
          2,
        ),
      ]).join("\n");
    case "vscode":
      return lines("//", [
        `// VS Code: .vscode/mcp.json`,
        JSON.stringify(
          {
            servers: {
              exai: { type: "stdio", command: launch.node, args, ...(hasEnv ? { env } : {}) },
            },
          },
          null,
          2,
        ),
      ]).join("\n");
    default:
      throw new ExaiError(
        "INVALID_ARGUMENT",
        `--client: unknown client ${JSON.stringify(client)}; use claude, codex, cursor or vscode`,
      );
  }
}

/** Prints the resolved configuration and timeout table: text for a human, or JSON with `json`. */
function printConfig(config: Config, json: boolean): void {
  const timeouts = summary(config.timeouts);
  const view = {
    version: VERSION,
    providers: Object.fromEntries(
      Object.entries(config.providers).map(([name, settings]) => [
        name,
        {
          base_url: settings?.baseUrl,
          timeout_s: (settings?.timeoutMs ?? 0) / 1000,
          api_key: settings?.apiKey ? "set" : "unset",
          models: settings?.models,
        },
      ]),
    ),
    default_model: config.defaultModel,
    tool_profile: config.tools.profile,
    data_dir: config.dataDir,
    source: {
      file: config.source.file ?? null,
      searched: config.source.searched,
      file_sha256: config.source.fileSha256 ?? null,
      ignored_project_env: config.source.ignoredProjectEnv ?? null,
    },
    timeouts,
    recommended_client_timeout_s: config.timeouts.clientMs / 1000,
    admission: config.admission,
  };
  if (json) {
    out(JSON.stringify(view, null, 2));
    return;
  }
  const t = timeouts;
  out(`exai-mcp ${VERSION}`);
  out(
    config.source.file
      ? `configuration file: ${config.source.file} (read; the environment wins over it)`
      : `configuration file: none — put one at ${config.source.searched} (exai init writes it), or set EXAI_ENV_FILE`,
  );
  out(
    `providers: ${Object.keys(config.providers).join(", ") || "none (set GLM_API_KEY, KIMI_API_KEY or CUSTOM_API_URL)"}`,
  );
  out(
    `default model: ${config.defaultModel}   tool profile: ${config.tools.profile}   data: ${config.dataDir}`,
  );
  out("");
  out("timeout hierarchy (seconds):");
  out(
    `  provider attempt   GLM ${t.provider_timeouts.glm} / Kimi ${t.provider_timeouts.kimi} / custom ${t.provider_timeouts.custom} (HTTP ceiling ${t.infrastructure_timeouts.http}, stream idle ${t.infrastructure_timeouts.stream_idle})`,
  );
  out(
    `  tool               simple ${t.tool_timeouts.simple} / workflow ${t.tool_timeouts.workflow} (expert ${t.tool_timeouts.expert_analysis})`,
  );
  out(`  daemon             ${t.infrastructure_timeouts.daemon}  (${t.ratios.daemon_to_tool} × workflow)`);
  out(`  shim               ${t.infrastructure_timeouts.shim}  (${t.ratios.shim_to_tool} × workflow)`);
  out(`  client (set this)  ${t.infrastructure_timeouts.client}  (${t.ratios.client_to_tool} × workflow)`);
  out(`hierarchy valid: ${t.hierarchy_valid}`);
  out("");
  out(
    `Set your MCP client's tool timeout to at least ${t.infrastructure_timeouts.client} s (exai config --client claude|codex|cursor|vscode prints the snippet).`,
  );
}

/**
 * Registers `exai config` on `program`. `cliPath` returns the absolute path of dist/cli.js (the
 * stdio snippet launches it).
 */
export function registerConfigCommand(program: Command, cliPath: () => string): void {
  program
    .command("config")
    .description("print the resolved configuration and timeout table; exit 2 when invalid")
    .option("--json", "machine-readable output")
    .option("--client <client>", "print the registration snippet for claude | codex | cursor | vscode")
    .option(
      "--transport <transport>",
      "with --client: stdio (default) or http (the daemon's /mcp with its token)",
    )
    .option("--markdown", "print the configuration variables as a markdown table")
    .action(async (options: { json?: boolean; client?: string; markdown?: boolean; transport?: string }) => {
      try {
        if (options.markdown) {
          out(renderConfigTable());
          return;
        }
        const config = readConfig();
        if (options.client && options.transport === "http") {
          const { daemonMcpUrl, httpClientSnippet } = await import("../daemon/client-snippet.js");
          const { ensurePrivateDataDir, resolveTcpToken } = await import("../mcp/trust.js");
          ensurePrivateDataDir(config.dataDir);
          out(
            httpClientSnippet(options.client, config, {
              url: daemonMcpUrl(config),
              token: resolveTcpToken(config),
            }),
          );
        } else if (options.transport !== undefined && options.transport !== "stdio") {
          throw new ExaiError(
            "INVALID_ARGUMENT",
            `--transport: unknown transport ${JSON.stringify(options.transport)}; use stdio or http (with --client)`,
          );
        } else if (options.client) {
          const explicit = processEnvironment().EXAI_ENV_FILE?.trim();
          out(
            clientSnippet(options.client, config, {
              node: process.execPath,
              cli: cliPath(),
              ...(config.source.file && explicit && explicit.toLowerCase() !== "off"
                ? { envFile: config.source.file }
                : {}),
              configured: config.source.file !== undefined,
            }),
          );
        } else printConfig(config, options.json ?? false);
      } catch (error) {
        fail(error);
      }
    });
}
