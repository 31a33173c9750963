/**
 * `exai init`: writes the user-level configuration file (SPEC §3) — the path `userConfigPath`
 * gives — with the provider variables the user passes, or asks for them on a terminal. The file is
 * written atomically (a 0600 temporary file in the same directory, then renamed or linked into
 * place) in a 0700 directory, and never overwritten without `force`. Keys are never printed.
 */
import { randomBytes } from "node:crypto";
import {
  chmodSync,
  closeSync,
  fsyncSync,
  linkSync,
  mkdirSync,
  openSync,
  renameSync,
  rmSync,
  writeSync,
} from "node:fs";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline/promises";
import { Writable, type Readable } from "node:stream";
import { ExaiError, invalidArgument } from "../base/errors.js";
import { userConfigPath } from "./load.js";
import { buildEnvironmentSchema } from "./schema.js";
import type { RawEnvironment } from "./variables.js";

/** The variables `exai init` writes, in file order, with the prompt shown for each. */
const INIT_VARIABLES = [
  ["GLM_API_KEY", "GLM (Z.ai) API key"],
  ["KIMI_API_KEY", "Kimi (Moonshot) API key"],
  ["CUSTOM_API_URL", "OpenAI-compatible endpoint URL (e.g. http://localhost:11434/v1)"],
  ["CUSTOM_MODEL_NAME", "model name(s) it serves, comma-separated"],
  ["CUSTOM_API_KEY", "its API key, if it needs one"],
] as const;

export type InitVariable = (typeof INIT_VARIABLES)[number][0];

export interface InitOptions {
  /** The real environment: decides the path (EXAI_ENV_FILE, XDG_CONFIG_HOME, HOME). */
  env: RawEnvironment;
  /** Values given on the command line; empty means "ask on a terminal". */
  values: Partial<Record<InitVariable, string>>;
  /** Overwrite an existing file. */
  force: boolean;
  /** Where prompts are read when no values are given and `input` is a TTY. */
  input?: Readable & { isTTY?: boolean };
  /** Where prompts are written (stderr: stdout is for results). */
  output?: Writable;
}

export interface InitResult {
  /** The file written (absolute). */
  path: string;
  /** Names of the variables written (never their values). */
  variables: string[];
}

/**
 * Writes the user configuration file.
 * @throws ExaiError INVALID_ARGUMENT when nothing is given (and no terminal to ask on), when a value
 *   is invalid (names the option) or when the file exists and `force` is false; CONFIG_INVALID when
 *   EXAI_ENV_FILE=off; the OS error, mapped by the caller, when the directory cannot be written.
 */
export async function runInit(options: InitOptions): Promise<InitResult> {
  if (options.env.EXAI_ENV_FILE?.trim().toLowerCase() === "off") {
    throw new ExaiError(
      "CONFIG_INVALID",
      "EXAI_ENV_FILE=off: no configuration file is read, so exai init has nowhere to write; unset EXAI_ENV_FILE or set it to a path",
      { details: { variables: ["EXAI_ENV_FILE"] } },
    );
  }
  const path = userConfigPath(options.env);
  let values: Partial<Record<InitVariable, string>> = Object.fromEntries(
    Object.entries(options.values).filter(([, value]) => value !== undefined && value.trim() !== ""),
  );
  if (Object.keys(values).length === 0) {
    if (!options.input?.isTTY || !options.output) {
      throw invalidArgument(
        "--glm-key",
        "no provider given: pass --glm-key, --kimi-key, or --custom-url with --custom-model (or run exai init in a terminal to be asked)",
      );
    }
    values = await ask(options.input, options.output);
  }
  checkValues(values);
  const text = render(values);
  writeAtomically(path, text, options.force);
  return {
    path,
    variables: INIT_VARIABLES.map(([name]) => name).filter((name) => values[name] !== undefined),
  };
}

async function ask(input: Readable, output: Writable): Promise<Partial<Record<InitVariable, string>>> {
  // Keys are not echoed: readline writes the prompt, then what is typed goes to a muted sink.
  let muted = false;
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      if (!muted) output.write(chunk);
      done();
    },
  });
  const rl = createInterface({ input, output: sink, terminal: true });
  const values: Partial<Record<InitVariable, string>> = {};
  try {
    output.write("exai init: press Enter to skip a provider (keys are not shown while you type).\n");
    for (const [name, prompt] of INIT_VARIABLES) {
      if (name.startsWith("CUSTOM_") && name !== "CUSTOM_API_URL" && values.CUSTOM_API_URL === undefined)
        continue;
      const secret = name.endsWith("_KEY");
      const question = rl.question(`${prompt}: `);
      muted = secret;
      const answer = (await question).trim();
      if (secret) {
        muted = false;
        output.write("\n");
      }
      if (answer !== "") values[name] = answer;
    }
  } finally {
    rl.close();
  }
  if (Object.keys(values).length === 0)
    throw invalidArgument("--glm-key", "no provider given; nothing was written");
  return values;
}

const OPTION_OF: Record<InitVariable, string> = {
  GLM_API_KEY: "--glm-key",
  KIMI_API_KEY: "--kimi-key",
  CUSTOM_API_URL: "--custom-url",
  CUSTOM_MODEL_NAME: "--custom-model",
  CUSTOM_API_KEY: "--custom-key",
};

function checkValues(values: Partial<Record<InitVariable, string>>): void {
  for (const [name, value] of Object.entries(values) as Array<[InitVariable, string]>) {
    // One line, no quotes: the value is written as KEY="value" and must read back unchanged.
    if (/["\\\r\n]/.test(value) || /^\s|\s$/.test(value))
      throw invalidArgument(
        OPTION_OF[name],
        "must be one line without quotes, backslashes or surrounding spaces",
      );
  }
  if (values.CUSTOM_API_URL !== undefined && values.CUSTOM_MODEL_NAME === undefined)
    throw invalidArgument(
      "--custom-model",
      "is required with --custom-url: name the model(s) the endpoint serves",
    );
  if (
    values.CUSTOM_API_URL === undefined &&
    (values.CUSTOM_MODEL_NAME ?? values.CUSTOM_API_KEY) !== undefined
  )
    throw invalidArgument("--custom-url", "is required with --custom-model / --custom-key");
  const parsed = buildEnvironmentSchema().safeParse(values);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const name = String(issue?.path[0] ?? "GLM_API_KEY") as InitVariable;
    throw invalidArgument(OPTION_OF[name] ?? name, issue?.message ?? "is invalid");
  }
}

function render(values: Partial<Record<InitVariable, string>>): string {
  const lines = [
    "# exai-mcp user configuration, written by `exai init`. Keep it private (mode 0600).",
    "# Every variable of .env.example may be set here; the real environment wins over this file.",
  ];
  for (const [name] of INIT_VARIABLES) {
    const value = values[name];
    if (value !== undefined) lines.push(`${name}="${value}"`);
  }
  return `${lines.join("\n")}\n`;
}

function writeAtomically(path: string, text: string, force: boolean): void {
  const dir = dirname(path);
  const created = mkdirSync(dir, { recursive: true, mode: 0o700 });
  // mkdir's mode is filtered by the umask; the directory we created must be 0700 exactly.
  if (created !== undefined) chmodSync(dir, 0o700);
  const temp = join(dir, `.env.${process.pid}.${randomBytes(6).toString("hex")}.tmp`);
  const fd = openSync(temp, "wx", 0o600);
  try {
    try {
      writeSync(fd, text);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    if (force) {
      renameSync(temp, path);
      return;
    }
    try {
      // link() fails when the target exists: no window in which another file could be replaced.
      linkSync(temp, path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "EEXIST") {
        throw new ExaiError(
          "INVALID_ARGUMENT",
          `${path} already exists; pass --force to replace it (or edit it: exai config shows what it sets)`,
          { details: { field: "--force", path } },
        );
      }
      throw error;
    }
  } finally {
    rmSync(temp, { force: true });
  }
}
