// Builds dist/ when it is missing, so `npm install` then `npm start` works on a fresh clone.
import { existsSync } from "node:fs";
import { execSync } from "node:child_process";

if (
  !existsSync(new URL("../dist/cli.js", import.meta.url)) &&
  existsSync(new URL("../src", import.meta.url))
) {
  try {
    // Build output goes to stderr: stdout belongs to the MCP protocol when `npm start` serves stdio.
    execSync("npm run -s build", { stdio: ["ignore", 2, 2] });
  } catch {
    // Dev dependencies (TypeScript) are absent in a production install; the package then ships dist/.
    console.error("exai: could not build dist/ (is TypeScript installed? run `npm install`)");
    process.exitCode = 0;
  }
}
