/**
 * The fake provider as a standalone server for demos: `exai fake-provider` and
 * `node dist/testing/server.js [--port N] [--host H] [--delay-ms N]`. The scripting API (rules,
 * faults, recorded requests) is the package entry "exai-mcp/testing" (./fake-provider.ts).
 */
import { pathToFileURL } from "node:url";
import { startFakeProvider, type FakeProvider } from "./fake-provider.js";

/**
 * Starts the fake provider for demos and prints one line, "fake provider listening on URL", to stderr.
 * The caller owns the returned instance (close it on shutdown).
 */
export async function runFakeProviderCli(argv: {
  port?: number;
  host?: string;
  delayMs?: number;
}): Promise<FakeProvider> {
  const provider = await startFakeProvider({
    port: argv.port,
    host: argv.host,
    defaultDelayMs: argv.delayMs,
  });
  process.stderr.write(`fake provider listening on ${provider.url}\n`);
  return provider;
}

function parseCliArgs(args: string[]): { port?: number; host?: string; delayMs?: number } {
  const out: { port?: number; host?: string; delayMs?: number } = {};
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] ?? "";
    const [flag, inline] = arg.includes("=")
      ? [arg.slice(0, arg.indexOf("=")), arg.slice(arg.indexOf("=") + 1)]
      : [arg];
    const value = (): string => inline ?? args[++i] ?? "";
    if (flag === "--port") out.port = Number(value());
    else if (flag === "--host") out.host = value();
    else if (flag === "--delay-ms") out.delayMs = Number(value());
  }
  return out;
}

// Run directly: node dist/testing/server.js [--port N] [--host H] [--delay-ms N]
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  void runFakeProviderCli(parseCliArgs(process.argv.slice(2))).then((provider) => {
    const stop = (): void => void provider.close().then(() => process.exit(0));
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
}
