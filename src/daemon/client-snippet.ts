/**
 * `exai config --client X --transport http`: how an MCP client that speaks Streamable HTTP itself
 * registers the daemon's `/mcp`, with the TCP token in that client's own header syntax.
 */
import type { Config } from "../config/load.js";
import { ExaiError } from "../base/errors.js";

export interface HttpSnippetOptions {
  /** The daemon's /mcp URL, e.g. http://127.0.0.1:8765/mcp. */
  url: string;
  /** The TCP token; undefined when EXAI_WS_TOKEN=off. */
  token: string | undefined;
}

/** The /mcp URL a client on this machine uses for the configured daemon. */
export function daemonMcpUrl(config: Config): string {
  const configured = config.daemon.host;
  const host = ["0.0.0.0", "::", ""].includes(configured) ? "127.0.0.1" : configured;
  return `http://${host.includes(":") ? `[${host}]` : host}:${config.daemon.port}/mcp`;
}

/**
 * The registration snippet for `client` (claude | codex | cursor | vscode) of the daemon's /mcp,
 * carrying `Authorization: Bearer <token>` in the client's header syntax.
 * @throws ExaiError INVALID_ARGUMENT for an unknown client.
 */
export function httpClientSnippet(client: string, config: Config, options: HttpSnippetOptions): string {
  const { url, token } = options;
  const header = token !== undefined ? `Bearer ${token}` : undefined;
  const headers = header !== undefined ? { Authorization: header } : undefined;
  const clientS = config.timeouts.clientMs / 1000;
  const notes = [
    `the daemon must be running (\`exai daemon\`); the token is ${config.daemon.tokenMode === "set" ? "EXAI_WS_TOKEN" : config.daemon.tokenMode === "off" ? "off (EXAI_WS_TOKEN=off: any local process can connect)" : `the generated one in ${config.dataDir}/daemon.token`}`,
    "keep it secret: whoever holds it can use your providers and read files under the daemon's roots",
  ];
  switch (client) {
    case "claude":
      return [
        `# Claude Code over HTTP (${notes.join("; ")})`,
        `claude mcp add --transport http exai ${url}${header !== undefined ? ` --header "Authorization: ${header}"` : ""}`,
        `export MCP_TOOL_TIMEOUT=${Math.ceil(clientS) * 1000}   # ms; put it in your shell profile`,
      ].join("\n");
    case "codex":
      return [
        `# Codex CLI over HTTP: ~/.codex/config.toml (${notes.join("; ")})`,
        `[mcp_servers.exai]`,
        `url = ${JSON.stringify(url)}`,
        ...(header !== undefined ? [`http_headers = { "Authorization" = ${JSON.stringify(header)} }`] : []),
        `tool_timeout_sec = ${Math.ceil(clientS)}`,
        ...(token !== undefined
          ? [
              `# or, to keep the token out of the file: bearer_token_env_var = "EXAI_MCP_TOKEN" and export EXAI_MCP_TOKEN=${token}`,
            ]
          : []),
      ].join("\n");
    case "cursor":
      return [
        `// Cursor over HTTP: ~/.cursor/mcp.json (${notes.join("; ")})`,
        JSON.stringify({ mcpServers: { exai: { url, ...(headers ? { headers } : {}) } } }, null, 2),
      ].join("\n");
    case "vscode":
      return [
        `// VS Code over HTTP: .vscode/mcp.json (${notes.join("; ")})`,
        JSON.stringify(
          { servers: { exai: { type: "http", url, ...(headers ? { headers } : {}) } } },
          null,
          2,
        ),
      ].join("\n");
    default:
      throw new ExaiError(
        "INVALID_ARGUMENT",
        `--client: unknown client ${JSON.stringify(client)}; use claude, codex, cursor or vscode`,
      );
  }
}
