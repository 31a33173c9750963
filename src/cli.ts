#!/usr/bin/env node
/**
 * The `exai` command (SPEC §2). This is the only module that reads `argv`, and it takes the
 * environment from src/config (`processEnvironment`); everything below receives a parsed Config.
 *
 * Exit codes: 0 ok, 1 a tool/smoke failure, 2 invalid configuration or usage.
 *
 * Each command imports its own modules when it runs (`await import()`): `exai stdio` never loads
 * the daemon, WebSocket or metrics code, and `exai config` / `exai init` load no tools at all.
 */
import { realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Command, InvalidArgumentError } from "commander";
import { loadConfig, type Config } from "./config/load.js";
import { processEnvironment } from "./config/environment.js";
import { summary } from "./config/timeouts.js";
import { renderConfigTable } from "./config/docs.js";
import { ExaiError, toExaiError } from "./base/errors.js";
import { VERSION } from "./base/version.js";

const out = (text: string) => process.stdout.write(`${text}\n`);
const err = (text: string) => process.stderr.write(`${text}\n`);

/**
 * Loads the configuration from the real environment and the user-level file. A `.env` in the
 * working directory that sets exai variables is not read; one line on stderr says so.
 */
function readConfig(): Config {
  const config = loadConfig({ env: processEnvironment(), cwd: process.cwd() });
  const ignored = config.source.ignoredProjectEnv;
  if (ignored) {
    err(
      `exai: ignored ${ignored}: configuration is never read from the working directory (a project could redirect your API keys or widen file access); put exai settings in ${config.source.file ?? config.source.searched} (exai init writes it)`,
    );
  }
  return config;
}

/** Prints an error for a human and sets the exit code (2 for configuration, 1 otherwise). */
function fail(error: unknown): void {
  const failure = toExaiError(error, "exai");
  err(`exai: ${failure.code}: ${failure.message}`);
  process.exitCode = failure.code === "CONFIG_INVALID" ? 2 : 1;
}

const cliPath = () => realpathSync(fileURLToPath(import.meta.url));

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

function parseCount(value: string): number {
  const count = Number(value);
  if (!Number.isInteger(count) || count < 0 || count > 256)
    throw new InvalidArgumentError("must be a whole number 0–256");
  return count;
}

function parsePort(value: string): number {
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new InvalidArgumentError("must be a port number 0–65535");
  return port;
}

/** Builds the command-line program. */
export function buildProgram(): Command {
  const program = new Command();
  program
    .name("exai")
    .description("MCP server: consult GLM, Kimi and OpenAI-compatible models from coding agents")
    .version(VERSION);

  program
    .command("stdio")
    .description("serve MCP over stdio, tools in-process (the default for MCP clients)")
    .action(async () => {
      try {
        const { runStdioServer } = await import("./server/stdio.js");
        await runStdioServer(readConfig());
      } catch (error) {
        fail(error);
      }
    });

  program
    .command("daemon")
    .description("run the shared daemon: WebSocket for shims, /mcp (Streamable HTTP), /health, /metrics")
    .option("--host <host>", "listen address (default EXAI_WS_HOST)")
    .option("--port <port>", "port (default EXAI_WS_PORT; 0 = any free port)", parsePort)
    .action(async (options: { host?: string; port?: number }) => {
      try {
        const { runDaemon } = await import("./daemon/server.js");
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

  program
    .command("shim")
    .description("serve MCP over stdio, forwarding to the shared daemon (started when none answers)")
    .action(async () => {
      try {
        const { runShim } = await import("./shim/shim.js");
        await runShim(readConfig(), { cliPath: cliPath(), daemonEnv: processEnvironment() });
      } catch (error) {
        fail(error);
      }
    });

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
          const { daemonMcpUrl, httpClientSnippet } = await import("./daemon/client-snippet.js");
          const { ensurePrivateDataDir, resolveTcpToken } = await import("./mcp/trust.js");
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
          const { runInit } = await import("./config/init.js");
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
        const { createRuntime } = await import("./runtime/runtime.js");
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
        const { runSmoke, formatSmokeTable } = await import("./smoke/smoke.js");
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
