/**
 * The daemon's configuration generations: what new calls run on (one configuration and the
 * runtime built from it). The daemon re-reads its configuration (`reloadConfig`, from the CLI) on
 * SIGHUP and when a shim's hello over the owner's socket reports another configuration file or
 * another content of it. New calls then run on a new runtime; calls in flight finish on the old
 * one, which is closed after them.
 */
import type { Config } from "../config/load.js";
import { toExaiError } from "../base/errors.js";
import type { Logger } from "../base/logging.js";
import type { Executor } from "../runtime/executor.js";
import { createRuntime, type Runtime } from "../runtime/runtime.js";
import { type HelloFrame } from "../mcp/frames.js";
import { configOrigin, providerFingerprintOf } from "../mcp/config-origin.js";
import { listTools } from "../mcp/server.js";

/** What new calls run on: one configuration and the runtime built from it. */
export interface Generation {
  config: Config;
  runtime: Runtime;
  executor: Executor;
  tools: ReturnType<typeof listTools>;
  /** Built by the daemon (so closed by it). */
  owned: boolean;
  fingerprint: Record<string, string>;
}

export interface GenerationsDeps {
  config: Config;
  runtime: Runtime;
  ownsRuntime: boolean;
  /** The generated TCP token, redacted from every generation's output. */
  token: string | undefined;
  /** Wraps each generation's executor (metrics). */
  instrument(executor: Executor): Executor;
  reloadConfig: (() => Config) | undefined;
  /** True once the daemon drains (no reload then). */
  draining(): boolean;
  /** How long a retired generation's calls may take, ms. */
  ceilingMs: number;
  logger: Logger;
}

export interface Generations {
  /** The generation new calls run on. */
  current(): Generation;
  /** An executor that runs each call on the current generation and drains / aborts every generation. */
  readonly executor: Executor;
  /** See Daemon.reload. Never rejects. */
  reload(reason: string): Promise<boolean>;
  /**
   * A hello over the owner's socket reporting another configuration file (or content) than ours
   * triggers one reload for it (at most one per second; TCP clients never trigger one).
   */
  reloadForHello(hello: HelloFrame, trusted: boolean): Promise<void>;
  /** Closes the runtimes the daemon built. */
  close(): Promise<void>;
}

/** The generations of one daemon, starting with `deps.runtime`. */
export function createGenerations(deps: GenerationsDeps): Generations {
  const { token, logger, ceilingMs } = deps;
  const rootLogger = deps.runtime.logger;
  const makeGeneration = (genConfig: Config, runtime: Runtime, owned: boolean): Generation => {
    // The generated token is a secret like EXAI_WS_TOKEN: never in a result, error or log line.
    if (token !== undefined) runtime.redactor.add(token);
    const executor = deps.instrument(runtime.executor);
    return {
      config: genConfig,
      runtime,
      executor,
      tools: listTools(executor.tools()),
      owned,
      fingerprint: providerFingerprintOf(genConfig),
    };
  };
  let gen = makeGeneration(deps.config, deps.runtime, deps.ownsRuntime);
  /** Generations replaced by a reload whose calls are still finishing. */
  const retired = new Set<Generation>();
  const executor: Executor = {
    findTool: (name) => gen.executor.findTool(name),
    tools: () => gen.executor.tools(),
    call: (request) => gen.executor.call(request),
    budgetFor: (tool) => gen.executor.budgetFor(tool),
    inflight: () => gen.executor.inflight() + [...retired].reduce((n, old) => n + old.executor.inflight(), 0),
    onSummary: (listener) => gen.executor.onSummary(listener),
    abortAll: (reason) => {
      for (const old of retired) old.executor.abortAll(reason);
      gen.executor.abortAll(reason);
    },
    drain: async (timeoutMs) => {
      await Promise.all([gen, ...retired].map((one) => one.executor.drain(timeoutMs)));
    },
  };

  let reloading: Promise<boolean> | undefined;
  /** Configuration origins (file + sha256) hellos reported that a reload did not make ours: not retried. */
  const unmatchedOrigins = new Set<string>();
  const swap = (reason: string, next: Config, runtime: Runtime) => {
    const old = gen;
    gen = makeGeneration(next, runtime, true);
    unmatchedOrigins.clear();
    retired.add(old);
    logger.info(
      { reason, config_file: configOrigin(next).file, providers: runtime.registry.configuredProviders() },
      "configuration reloaded; new calls use it",
    );
    void old.executor.drain(ceilingMs).then(async () => {
      retired.delete(old);
      if (old.owned) await old.runtime.close();
    });
  };
  const reload = (reason: string): Promise<boolean> => {
    const reloadConfig = deps.reloadConfig;
    if (reloadConfig === undefined || deps.draining()) return Promise.resolve(false);
    reloading ??= (async () => {
      let next: Config;
      let runtime: Runtime;
      try {
        next = reloadConfig();
        runtime = createRuntime(next, { mode: "daemon", logger: rootLogger });
      } catch (error) {
        const failure = toExaiError(error, "daemon");
        logger.warn(
          { reason, error_code: failure.code, error: failure.message },
          "configuration not reloaded; keeping the current one",
        );
        return false;
      }
      swap(reason, next, runtime);
      return true;
    })().finally(() => {
      reloading = undefined;
    });
    return reloading;
  };

  let lastHelloReloadAt = Number.NEGATIVE_INFINITY;
  const reloadForHello = async (hello: HelloFrame, trusted: boolean): Promise<void> => {
    const reported = hello.config;
    if (!trusted || (reported?.env_file === undefined && reported?.env_sha256 === undefined)) return;
    const ours = configOrigin(gen.config);
    if (reported.env_file === ours.file && reported.env_sha256 === ours.fileSha256) return;
    const key = `${reported.env_file ?? ""}\n${reported.env_sha256 ?? ""}`;
    if (unmatchedOrigins.has(key) || performance.now() - lastHelloReloadAt < 1000) return;
    lastHelloReloadAt = performance.now();
    await reload("a client reported another configuration file");
    const now = configOrigin(gen.config);
    if (reported.env_file !== now.file || reported.env_sha256 !== now.fileSha256) {
      if (unmatchedOrigins.size >= 64) unmatchedOrigins.clear();
      unmatchedOrigins.add(key);
    }
  };

  return {
    current: () => gen,
    executor,
    reload,
    reloadForHello,
    async close() {
      for (const one of [gen, ...retired]) if (one.owned) await one.runtime.close();
    },
  };
}
