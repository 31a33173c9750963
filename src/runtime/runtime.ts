/**
 * Composition root: builds everything one server needs from a Config — providers (with their
 * pools), the model registry, the store, file access, admission, coalescing and the executor —
 * and closes it all again. Tests build many runtimes in one process; nothing here is global.
 */
import { join } from "node:path";
import type { Config } from "../config/load.js";
import { ExaiError } from "../base/errors.js";
import { createFileReader, type FileReader } from "../files/reader.js";
import { createFileSandbox } from "../files/sandbox.js";
import { createLogger, openLogFile, type Logger } from "../base/logging.js";
import { getTokenCounter } from "../memory/tokenizer.js";
import { createAdmission, type Admission } from "../pipeline/admission.js";
import { createCoalescer } from "../pipeline/coalesce.js";
import { closeProviders, createProviders } from "../providers/index.js";
import { createModelRegistry, type ModelRegistry } from "../providers/registry.js";
import { redactorFor, type Redactor } from "../base/redact.js";
import { openStore } from "../store/resilient.js";
import type { Store } from "../store/store.js";
import type { RuntimeStats, Services, ToolDefinition } from "../tools/framework.js";
import { FULL_TOOLS, selectTools } from "../tools/index.js";
import { VERSION } from "../base/version.js";
import { createExecutor, type Executor } from "./executor.js";

/** File readers kept for distinct sets of client roots (one per project, typically). */
const MAX_CACHED_READERS = 64;

export interface Runtime {
  config: Config;
  services: Services;
  executor: Executor;
  admission: Admission;
  registry: ModelRegistry;
  store: Store;
  logger: Logger;
  /** Removes configured keys and tokens from results, errors and log lines; `add` more secrets. */
  redactor: Redactor;
  tools: readonly ToolDefinition[];
  /** Aborts what is in flight, closes pools and the store. Idempotent. */
  close(): Promise<void>;
}

export interface RuntimeOptions {
  mode: "stdio" | "daemon";
  logger?: Logger;
  store?: Store;
}

/**
 * Builds a runtime.
 * @throws ExaiError CONFIG_INVALID when TOOL_PROFILE / ENABLED_TOOLS / DISABLED_TOOLS name unknown tools.
 */
export function createRuntime(config: Config, options: RuntimeOptions): Runtime {
  // An unusable EXAI_DATA_DIR is reported (by the logger and the store below), never fatal.
  const logDir = join(config.dataDir, "logs");
  const redactor = redactorFor(config);
  const logger =
    options.logger ??
    createLogger({
      level: config.logLevel,
      logDir,
      dataDir: config.dataDir,
      base: { mode: options.mode },
      redact: redactor.text,
    });
  const tools = selectTools(config.tools);
  checkToolNames(config);
  const providers = createProviders(config, redactor);
  const registry = createModelRegistry(config);
  const reportFault = (fault: ExaiError) =>
    logger.error({ code: fault.code, ...fault.details }, fault.message);
  const store =
    options.store ??
    openStore({ path: join(config.dataDir, "exai.db"), dataDir: config.dataDir, onFault: reportFault });
  const admission = createAdmission({
    global: config.admission.global,
    provider: config.admission.provider,
    tool: config.admission.tool,
    session: config.admission.session,
  });
  const startedAt = Date.now();
  const toolCallLogPath = join(logDir, "toolcalls.jsonl");
  // A buffered append stream (sonic-boom, as pino uses): one open file instead of open/append/close per call.
  const toolCallLog = openLogFile(toolCallLogPath, {
    dataDir: config.dataDir,
    what: "the tool-call log",
    onFault: reportFault,
  });
  const defaultRoots = config.allowedRoots ?? [config.cwd];
  const sandbox = createFileSandbox({ allowedRoots: defaultRoots });
  const defaultReader = createFileReader({ sandbox });
  const readers = new Map<string, FileReader>();
  const counts = { total: 0, byOutcome: {} as Record<string, number> };

  const services: Services = {
    config,
    registry,
    store,
    tokens: getTokenCounter(),
    logger,
    version: VERSION,
    toolCallLogPath,
    appendToolCallLog(record) {
      toolCallLog.write(`${JSON.stringify(record)}\n`);
    },
    files(roots) {
      // The configured roots win; otherwise the client's roots; otherwise the working directory.
      if (config.allowedRoots || !roots || roots.length === 0) return defaultReader;
      const key = [...roots].sort().join("\n");
      let reader = readers.get(key);
      if (reader) {
        // Most recently used last: the Map's insertion order is the eviction order.
        readers.delete(key);
      } else {
        reader = createFileReader({ sandbox: sandbox.withRoots([...roots]) });
        const oldest = readers.keys().next();
        if (readers.size >= MAX_CACHED_READERS && !oldest.done) readers.delete(oldest.value);
      }
      readers.set(key, reader);
      return reader;
    },
    stats(): RuntimeStats {
      return {
        mode: options.mode,
        startedAt,
        inflight: executor.inflight(),
        admission: admission.snapshot(),
        calls: { total: counts.total, byOutcome: { ...counts.byOutcome } },
        tools: tools.length,
      };
    },
  };
  // stats() above reads `executor` only when called, after this line has run.
  const executor: Executor = createExecutor({
    services,
    providers,
    tools,
    admission,
    coalescer: createCoalescer(),
    coalesceDisabled: new Set(config.coalesce.disabledFor),
    redactor,
  });
  executor.onSummary((summary) => {
    counts.total++;
    const key = summary.error_code ?? "success";
    counts.byOutcome[key] = (counts.byOutcome[key] ?? 0) + 1;
  });
  let closed: Promise<void> | undefined;
  const runtime: Runtime = {
    config,
    services,
    executor,
    admission,
    registry,
    store,
    logger,
    redactor,
    tools,
    close() {
      closed ??= (async () => {
        executor.abortAll(new ExaiError("CANCELLED", "the server is shutting down"));
        await closeProviders(providers);
        await store.close();
        await toolCallLog.end();
        logger.flush?.();
      })();
      return closed;
    },
  };
  return runtime;
}

/**
 * Tool names in the admission and coalescing settings must be real tools: a typo would silently
 * mean "no cap" or "coalesce after all".
 * @throws ExaiError CONFIG_INVALID naming the variable, the unknown names and the valid ones.
 */
function checkToolNames(config: Config): void {
  const known = new Set<string>(FULL_TOOLS);
  const settings: Array<[string, string[]]> = [
    ["EXAI_WS_TOOL_MAX_INFLIGHT", Object.keys(config.admission.tool)],
    ["EXAI_WS_DISABLE_COALESCE_FOR_TOOLS", config.coalesce.disabledFor],
  ];
  for (const [variable, names] of settings) {
    const unknown = names.filter((name) => !known.has(name));
    if (unknown.length > 0) {
      throw new ExaiError(
        "CONFIG_INVALID",
        `${variable} names unknown tool(s): ${unknown.join(", ")}. Valid names: ${[...known].join(", ")}`,
        { details: { variables: [variable], unknown } },
      );
    }
  }
}
