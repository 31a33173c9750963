/**
 * The layer order and the process.env rule of eslint.config.js (`npm run check` runs ESLint): an
 * upward import, an import between transports, a dynamic import around the rule and a
 * `process.env` read outside src/config are errors; the real tree has none.
 */
import { readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { ESLint } from "eslint";
import { beforeAll, describe, expect, it } from "vitest";

const REPO_ROOT = fileURLToPath(new URL("..", import.meta.url));
const LAYER_RULES = new Set([
  "no-restricted-imports",
  "no-restricted-syntax",
  "no-restricted-properties",
  "max-lines",
  "max-lines-per-function",
]);

let eslint: ESLint;
beforeAll(() => {
  eslint = new ESLint({
    cwd: REPO_ROOT,
    ruleFilter: ({ ruleId }) => LAYER_RULES.has(ruleId),
  });
});

/** The layer-rule errors ESLint reports for `code` as if it were the file `filePath`. */
async function layerErrors(code: string, filePath: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath });
  return (result?.messages ?? []).map((message) => `${message.ruleId}: ${message.message}`);
}

describe("layer order (eslint.config.js)", () => {
  it("refuses an upward import: providers may not import tools", async () => {
    const errors = await layerErrors(
      'import { allTools } from "../tools/index.js";\nexport const tools = allTools;\n',
      "src/providers/x.ts",
    );
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(
      /^no-restricted-imports: .*src\/providers may import only src\/base, src\/config, src\/timing/,
    );
  });

  it("refuses a type-only upward import and a re-export from above", async () => {
    const errors = await layerErrors(
      'import type { Runtime } from "../runtime/runtime.js";\nexport type { Runtime };\nexport { createMcpServer } from "../mcp/server.js";\n',
      "src/tools/x.ts",
    );
    expect(errors).toHaveLength(2);
    expect(errors.every((error) => error.startsWith("no-restricted-imports:"))).toBe(true);
  });

  it("refuses a dynamic import() upward", async () => {
    const errors = await layerErrors(
      'export async function load() {\n  return import("../runtime/runtime.js");\n}\n',
      "src/tools/x.ts",
    );
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/^no-restricted-syntax: src\/tools may import only/);
  });

  it("refuses imports between transports (server, daemon, shim)", async () => {
    for (const [from, to] of [
      ["shim", "../daemon/server.js"],
      ["daemon", "../server/stdio.js"],
      ["server", "../shim/shim.js"],
    ] as const) {
      const errors = await layerErrors(
        `import * as other from "${to}";\nexport { other };\n`,
        `src/${from}/x.ts`,
      );
      expect(errors, `${from} -> ${to}`).toHaveLength(1);
    }
  });

  it("allows imports from lower floors and from the own folder", async () => {
    const code = [
      'import { backoffDelayMs } from "../timing/retry.js";',
      'import { ExaiError } from "../base/errors.js";',
      'import type { Config } from "../config/load.js";',
      'import { createGlmProvider } from "./glm.js";',
      "export type { Config };",
      "export { backoffDelayMs, ExaiError, createGlmProvider };",
      "",
    ].join("\n");
    expect(await layerErrors(code, "src/providers/x.ts")).toEqual([]);
    expect(
      await layerErrors('export { createMcpServer } from "../mcp/server.js";\n', "src/daemon/x.ts"),
    ).toEqual([]);
  });

  it("places every folder of src/ on a floor (none may import src/cli.ts)", async () => {
    const folders = readdirSync(new URL("../src", import.meta.url), { withFileTypes: true })
      .filter((entry) => entry.isDirectory())
      .map((entry) => entry.name);
    expect(folders.length).toBeGreaterThan(10);
    for (const folder of folders) {
      const errors = await layerErrors('import "../cli.js";\n', `src/${folder}/x.ts`);
      expect(errors, `src/${folder} has no layer rule in eslint.config.js`).toHaveLength(1);
    }
  });

  it("lets the CLI start the fake provider's server but not use its scripting API", async () => {
    expect(
      await layerErrors('export const load = () => import("./testing/server.js");\n', "src/cli.ts"),
    ).toEqual([]);
    const errors = await layerErrors(
      'import { startFakeProvider } from "./testing/fake-provider.js";\nexport const load = () => import("./testing/fake-provider.js");\nexport { startFakeProvider };\n',
      "src/cli.ts",
    );
    expect(errors).toHaveLength(2);
  });
});

describe("process.env only in src/config (eslint.config.js)", () => {
  it("refuses process.env in src/tools, in any form", async () => {
    const code = [
      'import { env } from "node:process";',
      "export const key = process.env.GLM_API_KEY;",
      'export const all = process["env"];',
      "export const copy = env;",
      "",
    ].join("\n");
    const errors = await layerErrors(code, "src/tools/x.ts");
    expect(errors.filter((error) => error.startsWith("no-restricted-properties:"))).toHaveLength(2);
    expect(errors.filter((error) => error.startsWith("no-restricted-imports:"))).toHaveLength(1);
    expect(errors.every((error) => error.includes("src/config"))).toBe(true);
  });

  it("refuses it in src/cli.ts and the transports too, allows it in src/config", async () => {
    const code = "export const home = process.env.HOME;\n";
    for (const file of ["src/cli.ts", "src/shim/x.ts", "src/daemon/x.ts", "src/base/x.ts"]) {
      expect(await layerErrors(code, file), file).toHaveLength(1);
    }
    expect(await layerErrors(code, "src/config/x.ts")).toEqual([]);
  });
});

describe("the real tree", () => {
  it("follows the layer order and reads process.env only in src/config", async () => {
    const results = await eslint.lintFiles(["src"]);
    const errors = results.flatMap((result) =>
      result.messages.map(
        (message) => `${result.filePath}:${message.line} ${message.ruleId}: ${message.message}`,
      ),
    );
    expect(results.length).toBeGreaterThan(50);
    expect(errors).toEqual([]);
  });
});

describe("size limits (eslint.config.js)", () => {
  it("refuses a source file over 400 lines and a function over 120 lines", async () => {
    const longFile = Array.from({ length: 401 }, (_, index) => `export const v${index} = ${index};`).join(
      "\n",
    );
    expect(await layerErrors(`${longFile}\n`, "src/tools/x.ts")).toEqual([
      expect.stringMatching(/^max-lines: File has too many lines \(401\)/),
    ]);
    const body = Array.from({ length: 121 }, (_, index) => `  total += ${index};`).join("\n");
    const longFunction = `export function sum(): number {\n  let total = 0;\n${body}\n  return total;\n}\n`;
    expect(await layerErrors(longFunction, "src/tools/x.ts")).toEqual([
      expect.stringMatching(/^max-lines-per-function: Function 'sum' has too many lines/),
    ]);
  });
});
