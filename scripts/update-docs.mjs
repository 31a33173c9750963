// Regenerates the README configuration table and .env.example from the variable list
// (src/config/variables.ts, rendered by src/config/docs.ts, compiled to dist/). Run after `npm run build`: `node scripts/update-docs.mjs`.
import { readFileSync, writeFileSync, renameSync } from "node:fs";
import { renderConfigTable, renderEnvExample } from "../dist/config/docs.js";

const writeAtomic = (path, text) => {
  writeFileSync(`${path}.tmp`, text);
  renameSync(`${path}.tmp`, path);
};

const readme = readFileSync("README.md", "utf8");
const start = "<!-- config-table:start -->";
const end = "<!-- config-table:end -->";
const before = readme.slice(0, readme.indexOf(start) + start.length);
const after = readme.slice(readme.indexOf(end));
if (readme.indexOf(start) < 0 || readme.indexOf(end) < 0)
  throw new Error("README.md lacks the config-table markers");
writeAtomic("README.md", `${before}\n${renderConfigTable()}\n${after}`);
writeAtomic(".env.example", renderEnvExample());
console.log("README.md configuration table and .env.example updated");
