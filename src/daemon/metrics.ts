/**
 * Prometheus metrics of the daemon (`GET /metrics`), on a Registry of its own — never prom-client's
 * global one, so tests can run many daemons in one process.
 *
 * Everything is derived from call outcomes (the executor's CALL SUMMARY plus the error payload) and
 * from the admission snapshot; nothing here reaches into the provider layer. Provider requests by
 * status are therefore reconstructed from each call's attempt list: the HTTP status (or error code)
 * of every failed attempt when the call failed, `ok` for the last attempt of a successful call and
 * `retried` for the attempts before it.
 *
 * The `tool` label is the normalised name of a known (enabled) tool, else "unknown": a client
 * cannot create one time series per made-up tool name.
 */
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { Admission } from "../pipeline/admission.js";
import type { CallOutcome, Executor } from "../runtime/executor.js";

export interface DaemonMetricsOptions {
  /** The admission of the current runtime (it changes after a configuration reload). */
  admission: () => Admission;
  /** Calls in flight now (executor.inflight). */
  inflight: () => number;
  /** Open client sessions by transport. */
  sessions: () => { websocket: number; mcp: number };
}

export interface DaemonMetrics {
  readonly registry: Registry;
  /** Wraps an executor so every call it runs is counted (use the wrapped one for WS and /mcp). */
  instrument(executor: Executor): Executor;
  /** Counts a refusal decided above the executor (DUPLICATE, shutting down). */
  recordRejection(reason: "DUPLICATE" | "OVER_CAPACITY", cap: string): void;
  /** Counts an /mcp session closed to stay within EXAI_MCP_MAX_SESSIONS. */
  recordMcpEviction(): void;
  /** The exposition text and its content type. */
  render(): Promise<{ contentType: string; body: string }>;
}

/** Call duration buckets, seconds: from a cached utility call to a long workflow step. */
const DURATION_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 45, 60, 90, 120];

export function createDaemonMetrics(options: DaemonMetricsOptions): DaemonMetrics {
  const registry = new Registry();
  const calls = new Counter({
    name: "exai_calls_total",
    help: "Tool calls finished, by tool and outcome (success or the error code)",
    labelNames: ["tool", "outcome"] as const,
    registers: [registry],
  });
  const duration = new Histogram({
    name: "exai_call_duration_seconds",
    help: "Duration of finished tool calls, seconds",
    labelNames: ["tool"] as const,
    buckets: DURATION_BUCKETS,
    registers: [registry],
  });
  registerGauges(registry, options);
  const rejections = registerRejections(registry, options);
  const timeouts = new Counter({
    name: "exai_timeouts_total",
    help: "Calls that ended in TIMEOUT, by the layer whose budget ran out",
    labelNames: ["layer"] as const,
    registers: [registry],
  });
  const providerRequests = new Counter({
    name: "exai_provider_requests_total",
    help: "Provider HTTP attempts by provider and status (HTTP status, error code, ok, retried)",
    labelNames: ["provider", "status"] as const,
    registers: [registry],
  });
  const mcpEvictions = new Counter({
    name: "exai_mcp_sessions_evicted_total",
    help: "/mcp sessions closed (least recently used first) to stay within EXAI_MCP_MAX_SESSIONS",
    registers: [registry],
  });

  const observe = (outcome: CallOutcome, tool: string) => {
    const summary = outcome.summary;
    const code = outcome.error?.code;
    calls.inc({ tool, outcome: code ?? "success" });
    duration.observe({ tool }, summary.duration_ms / 1000);
    if (code === "TIMEOUT") {
      const layer = typeof outcome.error?.layer === "string" ? outcome.error.layer : summary.layer;
      timeouts.inc({ layer });
    }
    if (summary.provider === undefined) return;
    const provider = summary.provider;
    const attempts = outcome.error?.attempts;
    if (Array.isArray(attempts) && attempts.length > 0) {
      for (const attempt of attempts as Array<{ status?: number; outcome?: string }>) {
        providerRequests.inc({ provider, status: String(attempt.status ?? attempt.outcome ?? "unknown") });
      }
    } else if (summary.attempts > 0) {
      if (outcome.ok) {
        providerRequests.inc({ provider, status: "ok" });
        if (summary.attempts > 1) providerRequests.inc({ provider, status: "retried" }, summary.attempts - 1);
      } else {
        providerRequests.inc({ provider, status: code ?? "error" }, summary.attempts);
      }
    }
  };

  return {
    registry,
    instrument(executor) {
      return {
        ...executor,
        async call(request) {
          const outcome = await executor.call(request);
          observe(outcome, executor.findTool(request.tool)?.name ?? "unknown");
          return outcome;
        },
      };
    },
    recordRejection(reason, cap) {
      rejections.inc({ reason, cap });
    },
    recordMcpEviction() {
      mcpEvictions.inc();
    },
    async render() {
      return { contentType: registry.contentType, body: await registry.metrics() };
    },
  };
}

/** The gauges read at scrape time: calls in flight, admission slots by cap, open sessions. */
function registerGauges(registry: Registry, options: DaemonMetricsOptions): void {
  new Gauge({
    name: "exai_calls_inflight",
    help: "Tool calls in flight",
    registers: [registry],
    collect() {
      this.set(options.inflight());
    },
  });
  new Gauge({
    name: "exai_admission_inflight",
    help: "Calls holding a slot of an admission cap, by cap kind and name",
    labelNames: ["cap", "name"] as const,
    registers: [registry],
    collect() {
      this.reset();
      const snapshot = options.admission().snapshot();
      this.set({ cap: "global", name: "global" }, snapshot.global.inflight);
      for (const kind of ["provider", "tool"] as const) {
        for (const [name, value] of Object.entries(snapshot[kind]))
          this.set({ cap: kind, name }, value.inflight);
      }
      // Session ids are never labels (another client could read them): one series for all sessions.
      this.set(
        { cap: "session", name: "all" },
        Object.values(snapshot.session).reduce((total, value) => total + value.inflight, 0),
      );
    },
  });
  new Gauge({
    name: "exai_sessions",
    help: "Open client sessions by transport",
    labelNames: ["transport"] as const,
    registers: [registry],
    collect() {
      const sessions = options.sessions();
      this.set({ transport: "websocket" }, sessions.websocket);
      this.set({ transport: "mcp" }, sessions.mcp);
    },
  });
}

/**
 * exai_rejections_total. Admission counts its refusals by cap kind; the counter follows those
 * totals at scrape time (per admission: a configuration reload brings a new one, counting from 0).
 */
function registerRejections(registry: Registry, options: DaemonMetricsOptions) {
  const seenAdmissionRefusals = new WeakMap<Admission, Record<string, number>>();
  return new Counter({
    name: "exai_rejections_total",
    help: "Calls refused at once: OVER_CAPACITY by cap kind (global, provider, tool, session, shutdown), DUPLICATE",
    labelNames: ["reason", "cap"] as const,
    registers: [registry],
    collect() {
      const admission = options.admission();
      let seen = seenAdmissionRefusals.get(admission);
      if (!seen) {
        seen = {};
        seenAdmissionRefusals.set(admission, seen);
      }
      for (const [cap, total] of Object.entries(admission.rejections())) {
        const delta = total - (seen[cap] ?? 0);
        // inc(…, 0) still creates the series, so every cap kind shows up from the first scrape.
        this.inc({ reason: "OVER_CAPACITY", cap }, Math.max(0, delta));
        seen[cap] = total;
      }
    },
  });
}
