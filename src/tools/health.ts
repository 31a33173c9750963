/**
 * health — is each provider reachable? One `GET {base}/models` per configured provider, in
 * parallel, each under its own short deadline (min(3 s, what is left of the call)) and without
 * retries, so one dead provider cannot hold the answer up. Each probe takes a slot of its
 * provider's cap; a provider whose cap is full is reported "busy" instead of probed. Never fails because a provider does:
 * each gets reachable / unreachable / not_configured, latency and the error code.
 */
import { z } from "zod";
import { PROVIDER_NAMES, type ProviderName } from "../config/load.js";
import { ExaiError, toExaiError } from "../base/errors.js";
import { now } from "../timing/deadline.js";
import { defineTool, type ToolContext } from "./framework.js";
import { PROVIDER_VARIABLE } from "./provider-support.js";

/** Longest probe of one provider, ms. */
const HEALTH_PROBE_MS = 3000;
/** Left for building the answer after the probes, ms. */
const ANSWER_MARGIN_MS = 50;

async function probe(context: ToolContext, name: ProviderName) {
  const budgetMs = Math.max(1, Math.min(HEALTH_PROBE_MS, context.remainingMs() - ANSWER_MARGIN_MS));
  const started = now();
  try {
    const response = await context.providerRequest<{ data?: unknown }>({
      provider: name,
      path: "/models",
      method: "GET",
      retry: false,
      budgetMs,
      layer: "tool",
      timeoutHint: "health probe; the provider did not answer GET /models",
    });
    return {
      provider: name,
      status: "reachable",
      latency_ms: Math.round(now() - started),
      ...(Array.isArray(response.data) ? { models_listed: response.data.length } : {}),
    };
  } catch (error) {
    const failure = ExaiError.is(error) ? error : toExaiError(error, "health");
    const httpStatus = failure.details.status as number | undefined;
    return {
      provider: name,
      // Any HTTP answer means the endpoint is up; 401/403 then say the key is wrong. A full
      // provider cap (EXAI_WS_<P>_MAX_INFLIGHT) means it was not probed: it is busy, not down.
      status:
        httpStatus !== undefined ? "reachable" : failure.code === "OVER_CAPACITY" ? "busy" : "unreachable",
      latency_ms: Math.round(now() - started),
      ...(httpStatus !== undefined ? { http_status: httpStatus } : {}),
      ...(httpStatus === 401 || httpStatus === 403 ? { auth: "rejected" } : {}),
      error_code: failure.code,
      message: failure.message,
    };
  }
}

export const healthTool = defineTool({
  name: "health",
  kind: "utility",
  description: "Check provider reachability (GET /models, ≤3 s each): reachable/unreachable, latency, error.",
  annotations: { title: "Health", readOnlyHint: true, openWorldHint: true },
  schema: z.object({}),
  async run(_args, context) {
    context.progress("probing providers");
    const providers = await Promise.all(
      PROVIDER_NAMES.map((name) => {
        if (!context.services.registry.configuredProviders().includes(name)) {
          return Promise.resolve({ provider: name, status: "not_configured", set: PROVIDER_VARIABLE[name] });
        }
        return probe(context, name);
      }),
    );
    const configured = providers.filter((item) => item.status !== "not_configured");
    const healthy =
      configured.length > 0 &&
      configured.every((item) => item.status === "reachable" && !("error_code" in item));
    return { status: "success", healthy, providers };
  },
});
