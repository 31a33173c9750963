/**
 * Admission control (SPEC §6.5): caps on calls in flight — global, per provider, per tool, per
 * client session. A call over any cap is refused at once with OVER_CAPACITY and a `retry_after`
 * estimated from recent durations; it never waits in a queue and never holds a slot. A lease is
 * released exactly once whatever happens to the call (success, error, timeout, cancel).
 *
 * This in-memory implementation serves one process; a Redis-backed one (leases that expire when a
 * daemon dies) can implement the same `Admission` interface.
 */
import { ExaiError, formatSeconds } from "../base/errors.js";

export interface AdmissionCaps {
  global: number;
  provider: Record<string, number>;
  tool: Record<string, number>;
  session: number;
}

export interface AdmissionRequest {
  tool: string;
  provider?: string;
  session?: string;
}

export interface Lease {
  /** Returns every slot taken. Idempotent: a second call does nothing. */
  release(): void;
}

export interface CapSnapshot {
  inflight: number;
  cap: number;
}

export interface AdmissionSnapshot {
  global: CapSnapshot;
  provider: Record<string, CapSnapshot>;
  tool: Record<string, CapSnapshot>;
  session: Record<string, CapSnapshot>;
}

export interface Admission {
  /**
   * Takes one slot in every cap that applies, or none.
   * @throws ExaiError OVER_CAPACITY (retryable, with retryAfterS and details.cap naming the cap).
   */
  acquire(request: AdmissionRequest): Lease;
  /**
   * Takes one slot of a provider's cap only (a further model call inside an admitted call).
   * @throws ExaiError OVER_CAPACITY when the provider's cap is full.
   */
  acquireProvider(provider: string): Lease;
  /** Feeds the retry_after estimate: how long calls of this tool take, ms. */
  recordDuration(tool: string, durationMs: number): void;
  snapshot(): AdmissionSnapshot;
  /** Total refusals by cap kind since start (for /metrics). */
  rejections(): Record<string, number>;
}

const RECENT = 50;

export function createAdmission(caps: AdmissionCaps): Admission {
  let global = 0;
  const provider = new Map<string, number>();
  const tool = new Map<string, number>();
  const session = new Map<string, number>();
  const durations = new Map<string, number[]>();
  const refused: Record<string, number> = { global: 0, provider: 0, tool: 0, session: 0 };

  const bump = (map: Map<string, number>, key: string, delta: number) => {
    const next = (map.get(key) ?? 0) + delta;
    if (next <= 0) map.delete(key);
    else map.set(key, next);
  };

  /** Median of recent durations of this tool (else of all tools), seconds, clamped to [0.1, 30]. */
  const retryAfterS = (toolName: string): number => {
    const own = durations.get(toolName);
    const pool = own && own.length > 0 ? own : [...durations.values()].flat();
    if (pool.length === 0) return 1;
    const sorted = [...pool].sort((a, b) => a - b);
    const median = sorted[Math.floor(sorted.length / 2)] as number;
    return Math.min(30, Math.max(0.1, median / 1000 / 2));
  };

  const refuse = (kind: string, name: string, inflight: number, cap: number, toolName: string): never => {
    refused[kind] = (refused[kind] ?? 0) + 1;
    const wait = retryAfterS(toolName);
    throw new ExaiError(
      "OVER_CAPACITY",
      `over capacity: ${name} has ${inflight}/${cap} calls in flight; retry after ${formatSeconds(wait)} (raise ${capVariable(kind, name)} to allow more)`,
      { retryable: true, retryAfterS: wait, details: { cap: kind, cap_name: name, inflight, limit: cap } },
    );
  };

  return {
    acquire(request) {
      if (global >= caps.global) refuse("global", "the server", global, caps.global, request.tool);
      const providerCap = request.provider !== undefined ? caps.provider[request.provider] : undefined;
      const providerInflight = request.provider !== undefined ? (provider.get(request.provider) ?? 0) : 0;
      if (providerCap !== undefined && providerInflight >= providerCap) {
        refuse("provider", `provider ${request.provider}`, providerInflight, providerCap, request.tool);
      }
      const toolCap = caps.tool[request.tool];
      const toolInflight = tool.get(request.tool) ?? 0;
      if (toolCap !== undefined && toolInflight >= toolCap)
        refuse("tool", `tool ${request.tool}`, toolInflight, toolCap, request.tool);
      const sessionInflight = request.session !== undefined ? (session.get(request.session) ?? 0) : 0;
      if (request.session !== undefined && sessionInflight >= caps.session) {
        refuse("session", "this client session", sessionInflight, caps.session, request.tool);
      }
      global++;
      if (request.provider !== undefined) bump(provider, request.provider, 1);
      bump(tool, request.tool, 1);
      if (request.session !== undefined) bump(session, request.session, 1);
      let released = false;
      return {
        release() {
          if (released) return;
          released = true;
          global--;
          if (request.provider !== undefined) bump(provider, request.provider, -1);
          bump(tool, request.tool, -1);
          if (request.session !== undefined) bump(session, request.session, -1);
        },
      };
    },
    acquireProvider(name) {
      const cap = caps.provider[name];
      const inflight = provider.get(name) ?? 0;
      if (cap !== undefined && inflight >= cap) refuse("provider", `provider ${name}`, inflight, cap, name);
      bump(provider, name, 1);
      let released = false;
      return {
        release() {
          if (released) return;
          released = true;
          bump(provider, name, -1);
        },
      };
    },
    recordDuration(toolName, durationMs) {
      const list = durations.get(toolName) ?? [];
      list.push(durationMs);
      if (list.length > RECENT) list.shift();
      durations.set(toolName, list);
    },
    snapshot() {
      const providerSnapshot: Record<string, CapSnapshot> = {};
      for (const [name, cap] of Object.entries(caps.provider))
        providerSnapshot[name] = { inflight: provider.get(name) ?? 0, cap };
      const toolSnapshot: Record<string, CapSnapshot> = {};
      for (const name of new Set([...Object.keys(caps.tool), ...tool.keys()])) {
        toolSnapshot[name] = { inflight: tool.get(name) ?? 0, cap: caps.tool[name] ?? caps.global };
      }
      const sessionSnapshot: Record<string, CapSnapshot> = {};
      for (const [name, inflight] of session) sessionSnapshot[name] = { inflight, cap: caps.session };
      return {
        global: { inflight: global, cap: caps.global },
        provider: providerSnapshot,
        tool: toolSnapshot,
        session: sessionSnapshot,
      };
    },
    rejections: () => ({ ...refused }),
  };
}

function capVariable(kind: string, name: string): string {
  if (kind === "global") return "EXAI_WS_GLOBAL_MAX_INFLIGHT";
  if (kind === "provider") return `EXAI_WS_${name.replace("provider ", "").toUpperCase()}_MAX_INFLIGHT`;
  if (kind === "tool") return "EXAI_WS_TOOL_MAX_INFLIGHT";
  return "EXAI_WS_SESSION_MAX_INFLIGHT";
}
