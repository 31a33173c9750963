/**
 * The timeout hierarchy (SPEC §3): provider attempt → tool → daemon → shim → client.
 * All values here are milliseconds, kept as exact numbers: the Python original rejected its own
 * 45 s default because it truncated 67.5 s to 67 before comparing. Nothing is rounded here.
 */

export const DAEMON_RATIO = 1.5;
export const SHIM_RATIO = 2.0;
export const CLIENT_RATIO = 2.5;

/**
 * Time a workflow step keeps around its expert call, ms: 5 s (SPEC §3), or 20 % of the workflow
 * budget when that is smaller — so short, time-scaled budgets (1 s in tests) stay valid.
 */
export function expertMarginMs(workflowMs: number): number {
  return Math.min(5000, workflowMs * 0.2);
}

/** The expert budget when EXPERT_ANALYSIS_TIMEOUT_SECS is unset: 40 s, at most workflow − margin. Seconds. */
export function derivedExpertSeconds(workflowS: number): number {
  return Math.min(40, (workflowS * 1000 - expertMarginMs(workflowS * 1000)) / 1000);
}

export interface TimeoutConfig {
  simpleToolMs: number;
  workflowToolMs: number;
  expertAnalysisMs: number;
  /** Daemon ceiling per call: EXAI_WS_CALL_TIMEOUT or 1.5 × workflow. */
  daemonMs: number;
  daemonExplicit: boolean;
  /** Shim ceiling per call: EXAI_SHIM_RPC_TIMEOUT or 2 × workflow. */
  shimMs: number;
  shimExplicit: boolean;
  /** Recommended MCP-client tool timeout: 2.5 × workflow. */
  clientMs: number;
  httpMs: number;
  connectMs: number;
  streamIdleMs: number;
  provider: { glm: number; kimi: number; custom: number; kimiWebSearch: number };
  expertHeartbeatMs: number;
  progressIntervalMs: number;
}

export interface TimeoutInputsS {
  simple: number;
  workflow: number;
  expert: number;
  daemon?: number;
  shim?: number;
  http: number;
  connect: number;
  streamIdle: number;
  glm: number;
  kimi: number;
  custom: number;
  kimiWebSearch: number;
  expertHeartbeat: number;
  progressInterval: number;
}

const ms = (seconds: number) => seconds * 1000;

/** Builds the hierarchy from seconds (as configured) and derives daemon / shim / client. */
export function buildTimeoutConfig(input: TimeoutInputsS): TimeoutConfig {
  const workflowToolMs = ms(input.workflow);
  const shimMs = input.shim !== undefined ? ms(input.shim) : workflowToolMs * SHIM_RATIO;
  return {
    simpleToolMs: ms(input.simple),
    workflowToolMs,
    expertAnalysisMs: ms(input.expert),
    daemonMs: input.daemon !== undefined ? ms(input.daemon) : workflowToolMs * DAEMON_RATIO,
    daemonExplicit: input.daemon !== undefined,
    shimMs,
    shimExplicit: input.shim !== undefined,
    clientMs: workflowToolMs * CLIENT_RATIO,
    httpMs: ms(input.http),
    connectMs: ms(input.connect),
    streamIdleMs: ms(input.streamIdle),
    provider: {
      glm: ms(input.glm),
      kimi: ms(input.kimi),
      custom: ms(input.custom),
      kimiWebSearch: ms(input.kimiWebSearch),
    },
    expertHeartbeatMs: ms(input.expertHeartbeat),
    progressIntervalMs: ms(input.progressInterval),
  };
}

export interface HierarchyProblem {
  /** Variables involved, first the one most likely to need changing. */
  variables: string[];
  message: string;
}

const s = (valueMs: number) => `${Number((valueMs / 1000).toFixed(3))} s`;

/**
 * Checks the ordering rules of SPEC §3 with exact arithmetic. Returns every violated rule (empty
 * when valid); each names the variables involved, their values and the rule.
 */
export function validateHierarchy(t: TimeoutConfig): HierarchyProblem[] {
  const problems: HierarchyProblem[] = [];
  const providers: Array<[string, number]> = [
    ["GLM_TIMEOUT_SECS", t.provider.glm],
    ["KIMI_TIMEOUT_SECS", t.provider.kimi],
    ["CUSTOM_TIMEOUT_SECS", t.provider.custom],
    ["KIMI_WEB_SEARCH_TIMEOUT_SECS", t.provider.kimiWebSearch],
  ];
  for (const [name, value] of providers) {
    if (value > t.httpMs) {
      problems.push({
        variables: [name, "EX_HTTP_TIMEOUT_SECONDS"],
        message: `${name} (${s(value)}) must be ≤ EX_HTTP_TIMEOUT_SECONDS (${s(t.httpMs)}): lower it or raise EX_HTTP_TIMEOUT_SECONDS`,
      });
    }
  }
  const margin = expertMarginMs(t.workflowToolMs);
  if (t.expertAnalysisMs > t.workflowToolMs - margin) {
    problems.push({
      variables: ["EXPERT_ANALYSIS_TIMEOUT_SECS", "WORKFLOW_TOOL_TIMEOUT_SECS"],
      message: `EXPERT_ANALYSIS_TIMEOUT_SECS (${s(t.expertAnalysisMs)}) must be ≤ WORKFLOW_TOOL_TIMEOUT_SECS − ${s(margin)} (${s(t.workflowToolMs - margin)}): the workflow step needs time around the expert call; lower it, or unset it to derive it`,
    });
  }
  const toolMax = Math.max(t.simpleToolMs, t.workflowToolMs);
  const toolName =
    t.simpleToolMs > t.workflowToolMs ? "SIMPLE_TOOL_TIMEOUT_SECS" : "WORKFLOW_TOOL_TIMEOUT_SECS";
  if (!(toolMax < t.daemonMs)) {
    problems.push({
      variables: [t.daemonExplicit ? "EXAI_WS_CALL_TIMEOUT" : toolName, toolName],
      message: `the daemon ceiling EXAI_WS_CALL_TIMEOUT (${s(t.daemonMs)}${t.daemonExplicit ? "" : ", derived"}) must be greater than ${toolName} (${s(toolMax)}): ${t.daemonExplicit ? "raise EXAI_WS_CALL_TIMEOUT or unset it to derive 1.5 × workflow" : "lower SIMPLE_TOOL_TIMEOUT_SECS"}`,
    });
  }
  if (!(t.daemonMs < t.shimMs)) {
    problems.push({
      variables: [t.shimExplicit ? "EXAI_SHIM_RPC_TIMEOUT" : "EXAI_WS_CALL_TIMEOUT", "EXAI_WS_CALL_TIMEOUT"],
      message: `EXAI_SHIM_RPC_TIMEOUT (${s(t.shimMs)}) must be greater than EXAI_WS_CALL_TIMEOUT (${s(t.daemonMs)}): each outer layer needs a larger budget than the one inside it`,
    });
  }
  if (!(t.shimMs < t.clientMs)) {
    problems.push({
      variables: ["EXAI_SHIM_RPC_TIMEOUT"],
      message: `EXAI_SHIM_RPC_TIMEOUT (${s(t.shimMs)}) must be less than the recommended client timeout, 2.5 × WORKFLOW_TOOL_TIMEOUT_SECS (${s(t.clientMs)}): lower it or raise WORKFLOW_TOOL_TIMEOUT_SECS`,
    });
  }
  const callTimeouts: Array<[string, number]> = [
    ["SIMPLE_TOOL_TIMEOUT_SECS", t.simpleToolMs],
    ["WORKFLOW_TOOL_TIMEOUT_SECS", t.workflowToolMs],
    ["EXPERT_ANALYSIS_TIMEOUT_SECS", t.expertAnalysisMs],
  ];
  const heartbeats: Array<[string, number]> = [
    ["EXPERT_HEARTBEAT_INTERVAL_SECS", t.expertHeartbeatMs],
    ["EXAI_WS_PROGRESS_INTERVAL_SECS", t.progressIntervalMs],
  ];
  for (const [heartbeatName, heartbeat] of heartbeats) {
    const [callName, callMs] = callTimeouts.reduce((a, b) => (b[1] < a[1] ? b : a));
    if (!(heartbeat < callMs / 2)) {
      problems.push({
        variables: [heartbeatName, callName],
        message: `${heartbeatName} (${s(heartbeat)}) must be less than half of ${callName} (${s(callMs / 2)}) so clients see progress before a call can time out`,
      });
    }
  }
  return problems;
}

export interface TimeoutSummary {
  tool_timeouts: { simple: number; workflow: number; expert_analysis: number };
  infrastructure_timeouts: {
    daemon: number;
    shim: number;
    client: number;
    http: number;
    connect: number;
    stream_idle: number;
  };
  provider_timeouts: { glm: number; kimi: number; custom: number; kimi_web_search: number };
  ratios: { daemon_to_tool: number; shim_to_tool: number; client_to_tool: number };
  hierarchy_valid: boolean;
  problems: string[];
}

/** The timeout table as shown by `exai config` (values in seconds). */
export function summary(t: TimeoutConfig): TimeoutSummary {
  const sec = (valueMs: number) => valueMs / 1000;
  const problems = validateHierarchy(t);
  return {
    tool_timeouts: {
      simple: sec(t.simpleToolMs),
      workflow: sec(t.workflowToolMs),
      expert_analysis: sec(t.expertAnalysisMs),
    },
    infrastructure_timeouts: {
      daemon: sec(t.daemonMs),
      shim: sec(t.shimMs),
      client: sec(t.clientMs),
      http: sec(t.httpMs),
      connect: sec(t.connectMs),
      stream_idle: sec(t.streamIdleMs),
    },
    provider_timeouts: {
      glm: sec(t.provider.glm),
      kimi: sec(t.provider.kimi),
      custom: sec(t.provider.custom),
      kimi_web_search: sec(t.provider.kimiWebSearch),
    },
    ratios: {
      daemon_to_tool: t.daemonMs / t.workflowToolMs,
      shim_to_tool: t.shimMs / t.workflowToolMs,
      client_to_tool: t.clientMs / t.workflowToolMs,
    },
    hierarchy_valid: problems.length === 0,
    problems: problems.map((problem) => problem.message),
  };
}
