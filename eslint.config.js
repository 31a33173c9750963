import js from "@eslint/js";
import tseslint from "typescript-eslint";

/**
 * The floors of src/, lowest first. A file in src/<folder> imports only from folders on lower floors
 * or from its own folder: never a peer on the same floor (server, daemon and shim never import each
 * other), never a floor above. src/cli.ts sits on top of them all.
 */
const FLOORS = [
  ["base"], // errors, logging, redaction, version: imports nothing of ours
  ["config"], // the only folder that reads process.env
  ["timing"], // deadline and retry primitives
  ["providers", "files", "store"],
  ["memory"],
  ["pipeline"], // admission, coalescing
  ["tools"],
  ["runtime"],
  ["mcp"], // what every transport shares
  ["server", "daemon", "shim"], // transports
  ["smoke"],
  ["commands"], // the exai commands, registered by src/cli.ts
];
/** The fake provider: its own package entry (exai-mcp/testing); it may use only src/base. */
const TESTING = "testing";

const ENV_MESSAGE =
  "Read the environment only in src/config (processEnvironment(), loadConfig): the rest of src receives a parsed Config.";

/** A regex source matching a relative import of one of `folders` (or of src/cli.ts) from src/<x>/. */
function upwardImport(folders) {
  return String.raw`^(?:\.\.\W)+(?:${folders.join("|")})(?:\W|$)`;
}

/** no-restricted-imports and no-restricted-syntax (dynamic import()) for each folder of src/. */
function layerRules() {
  const folders = FLOORS.flat();
  const entries = [...FLOORS.entries()].flatMap(([floor, peers]) =>
    peers.map((folder) => {
      const allowed = [...FLOORS.slice(0, floor).flat(), folder];
      return { folder, allowed, denied: [...folders.filter((f) => !allowed.includes(f)), TESTING, "cli"] };
    }),
  );
  entries.push({
    folder: TESTING,
    allowed: ["base", TESTING],
    denied: [...folders.filter((f) => f !== "base"), "cli"],
  });
  return entries.map(({ folder, allowed, denied }) => {
    const message = `src/${folder} may import only ${allowed.map((f) => `src/${f}`).join(", ")} (the layer order in eslint.config.js).`;
    const regex = upwardImport(denied);
    return {
      files: [`src/${folder}/**/*.ts`],
      rules: {
        "no-restricted-imports": [
          "error",
          {
            ...(folder === "config" ? {} : { paths: envImportPaths() }),
            patterns: [{ regex, message }],
          },
        ],
        "no-restricted-syntax": [
          "error",
          { selector: `ImportExpression > Literal.source[value=/${regex}/]`, message },
        ],
      },
    };
  });
}

function envImportPaths() {
  return ["process", "node:process"].map((name) => ({ name, importNames: ["env"], message: ENV_MESSAGE }));
}

// The CLI may start the fake provider's server, never reach into its scripting API.
const CLI_TESTING = String.raw`^\.\Wtesting\W(?!server\.js$)`;

export default tseslint.config(
  { ignores: ["dist/", "node_modules/", "coverage/", "bench/.tmp/"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      globals: {
        process: "readonly",
        console: "readonly",
        setTimeout: "readonly",
        clearTimeout: "readonly",
        setInterval: "readonly",
        clearInterval: "readonly",
        setImmediate: "readonly",
        URL: "readonly",
        Buffer: "readonly",
        AbortController: "readonly",
        AbortSignal: "readonly",
        performance: "readonly",
        structuredClone: "readonly",
        TextEncoder: "readonly",
        TextDecoder: "readonly",
        fetch: "readonly",
        Response: "readonly",
        Headers: "readonly",
      },
    },
    rules: {
      "no-console": "error",
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "no-empty": ["error", { allowEmptyCatch: false }],
    },
  },
  {
    files: ["scripts/**", "bench/**"],
    rules: { "no-console": "off" },
  },
  {
    // One concern per file, and functions a reader can hold in mind (the tool catalogue is JSON data).
    files: ["src/**/*.ts"],
    rules: {
      "max-lines": ["error", { max: 400 }],
      "max-lines-per-function": ["error", { max: 120 }],
    },
  },
  {
    files: ["src/**/*.ts"],
    ignores: ["src/config/**"],
    rules: {
      "no-restricted-properties": ["error", { object: "process", property: "env", message: ENV_MESSAGE }],
    },
  },
  ...layerRules(),
  {
    files: ["src/cli.ts"],
    rules: {
      "no-restricted-imports": [
        "error",
        {
          paths: envImportPaths(),
          patterns: [
            {
              regex: CLI_TESTING,
              message: "src/cli.ts may import only testing/server.js (the fake provider's server).",
            },
          ],
        },
      ],
      "no-restricted-syntax": [
        "error",
        {
          selector: `ImportExpression > Literal.source[value=/${CLI_TESTING}/]`,
          message: "src/cli.ts may import only testing/server.js (the fake provider's server).",
        },
      ],
    },
  },
);
