// Copies non-TypeScript assets (the model catalogue) next to the compiled code.
import { cpSync, mkdirSync, chmodSync, existsSync } from "node:fs";

mkdirSync("dist/providers", { recursive: true });
cpSync("src/providers/catalogue.json", "dist/providers/catalogue.json");
if (existsSync("dist/cli.js")) chmodSync("dist/cli.js", 0o755);
