/** The package version, read once from package.json next to dist/ or src/. */
import { readFileSync } from "node:fs";

function readVersion(): string {
  try {
    const text = readFileSync(new URL("../../package.json", import.meta.url), "utf8");
    return (JSON.parse(text) as { version: string }).version;
  } catch {
    // Running from an unusual layout (bundled): the version is informative only.
    return "0.0.0";
  }
}

export const VERSION: string = readVersion();
export const SERVER_NAME = "exai-mcp";
