/**
 * The daemon's health report (`/health`, the `health` op). Without the token a client learns
 * liveness only; the details (owner's socket, or TCP with the token) never name a session id: the
 * session cap is summarised.
 */
import type { Config } from "../config/load.js";
import { VERSION } from "../base/version.js";
import { configOrigin } from "../mcp/config-origin.js";
import type { Generation } from "./generations.js";
import type { RequestRegistry } from "./requests.js";

export interface HealthDeps {
  /** The configuration the daemon started with (its timeouts are reported). */
  config: Config;
  current(): Generation;
  /** Calls in flight over every generation. */
  inflight(): number;
  requests: Pick<RequestRegistry, "running" | "cached" | "cachedBytes">;
  sessions(): { websocket: number; mcp: number };
  draining(): boolean;
  /** The TCP port bound (0: not listening). */
  boundPort(): number;
  tokenRequired: boolean;
  daemonId: string;
}

export interface HealthReport {
  /** {status, version}: all a client without the token learns. */
  liveness(): { status: string; version: string };
  /** Everything /health shows the owner. */
  details(): { status: string; version: string } & Record<string, unknown>;
}

/** The health report of one daemon; uptime counts from this call. */
export function createHealthReport(deps: HealthDeps): HealthReport {
  const startedAt = performance.now();
  const { config } = deps;
  const liveness = () => ({ status: deps.draining() ? "draining" : "ok", version: VERSION });
  return {
    liveness,
    details() {
      const gen = deps.current();
      const admission = gen.runtime.admission.snapshot();
      const sessionCaps = Object.values(admission.session);
      const requests = deps.requests;
      return {
        ...liveness(),
        pid: process.pid,
        daemon_id: deps.daemonId,
        uptime_s: Math.round((performance.now() - startedAt) / 100) / 10,
        calls_inflight: deps.inflight(),
        inflight: {
          ...admission,
          session: {
            busy_sessions: sessionCaps.length,
            inflight: sessionCaps.reduce((total, cap) => total + cap.inflight, 0),
            cap: gen.config.admission.session,
          },
        },
        requests: {
          running: requests.running(),
          cached: requests.cached(),
          cached_bytes: requests.cachedBytes(),
        },
        sessions: deps.sessions(),
        providers: gen.runtime.registry.configuredProviders(),
        config_file: configOrigin(gen.config).file ?? null,
        tcp: { listening: deps.boundPort() !== 0, auth: deps.tokenRequired },
        timeouts_s: {
          daemon: config.timeouts.daemonMs / 1000,
          shim: config.timeouts.shimMs / 1000,
          simple: config.timeouts.simpleToolMs / 1000,
          workflow: config.timeouts.workflowToolMs / 1000,
        },
      };
    },
  };
}
