/**
 * Runs an `exai` command in this process: the same commander program as `dist/cli.js`, with
 * `process.env`, the working directory, stdout/stderr and the exit code swapped in for the call.
 * A spawned `node dist/cli.js` costs a module load (~0.3–2 s on a loaded machine) per call; tests
 * that check a command's output, not a property of the process, use this instead.
 *
 * Calls are serialised (the swapped globals are process-wide), so it is safe under `it.concurrent`.
 */
import { buildProgram } from "../../src/cli.js";

/** What a command printed and the exit code `exai` would have exited with. */
export interface CliOutcome {
  code: number;
  stdout: string;
  stderr: string;
}

let queue: Promise<unknown> = Promise.resolve();

/**
 * Runs `exai <args>` with exactly `env` as the environment (undefined values dropped) in `cwd`
 * (default: the current directory). stdin is never a terminal here (like `execFile`). Never throws
 * for a failing command: the failure is in `code` and `stderr`.
 */
export function runCli(
  args: string[],
  options: { env: Record<string, string | undefined>; cwd?: string },
): Promise<CliOutcome> {
  const next = queue.then(() => runNow(args, options));
  queue = next.catch(() => undefined);
  return next;
}

async function runNow(
  args: string[],
  options: { env: Record<string, string | undefined>; cwd?: string },
): Promise<CliOutcome> {
  const saved = {
    env: process.env,
    cwd: process.cwd(),
    exitCode: process.exitCode,
    stdout: process.stdout.write,
    stderr: process.stderr.write,
    isTTY: Object.getOwnPropertyDescriptor(process.stdin, "isTTY"),
  };
  let stdout = "";
  let stderr = "";
  const capture =
    (append: (text: string) => void) =>
    (chunk: string | Uint8Array, ...rest: unknown[]): boolean => {
      append(typeof chunk === "string" ? chunk : Buffer.from(chunk).toString());
      const callback = rest.find((value): value is () => void => typeof value === "function");
      callback?.();
      return true;
    };
  let code: number;
  try {
    process.env = Object.fromEntries(
      Object.entries(options.env).filter((entry): entry is [string, string] => entry[1] !== undefined),
    );
    if (options.cwd) process.chdir(options.cwd);
    Object.defineProperty(process.stdin, "isTTY", { value: false, configurable: true, writable: true });
    process.exitCode = undefined;
    process.stdout.write = capture((text) => (stdout += text)) as typeof process.stdout.write;
    process.stderr.write = capture((text) => (stderr += text)) as typeof process.stderr.write;
    const program = buildProgram().exitOverride();
    // A usage error in a subcommand must throw here, not exit the test worker.
    for (const command of program.commands) command.exitOverride();
    try {
      await program.parseAsync(["node", "exai", ...args]);
      code = Number(process.exitCode ?? 0);
    } catch (error) {
      // Commander's usage errors (exitOverride turns its process.exit into a throw).
      code = Number((error as { exitCode?: number }).exitCode ?? 1);
    }
  } finally {
    process.stdout.write = saved.stdout;
    process.stderr.write = saved.stderr;
    if (saved.isTTY) Object.defineProperty(process.stdin, "isTTY", saved.isTTY);
    else delete (process.stdin as { isTTY?: boolean }).isTTY;
    process.exitCode = saved.exitCode;
    process.chdir(saved.cwd);
    process.env = saved.env;
  }
  return { code, stdout, stderr };
}
