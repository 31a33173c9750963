/**
 * health — is each provider reachable? One `GET {base}/models` per configured provider, in
 * parallel, each under its own short deadline (min(3 s, what is left of the call)) and without
 * retries, so one dead provider cannot hold the answer up. Never fails because a provider does:
 * each gets reachable / unreachable / not_configured, latency and the error code.
 */
import { z } from "zod";
import { PROVIDER_NAMES, type ProviderName } from "../config/load.js";
import { ExaiError, toExaiError } from "../base/errors.js";
import { now, startDeadline } from "../timing/deadline.js";
import type { Provider } from "../providers/openai-compatible.js";
import { defineTool, type ToolContext } from "./framework.js";
import { PROVIDER_VARIABLE } from "./provider-support.js";

/** Longest probe of one provider, ms. */
export const HEALTH_PROBE_MS = 3000;
/** Left for building the answer after the probes, ms. */
const ANSWER_MARGIN_MS = 50;

async function probe(context: ToolContext, name: ProviderName, provider: Provider) {
  const budgetMs = Math.max(1, Math.min(HEALTH_PROBE_MS, context.remainingMs() - ANSWER_MARGIN_MS));
  const deadline = startDeadline(
    budgetMs,
    "tool",
    context.signal,
    "health probe; the provider did not answer GET /models",
  );
  const started = now();
  try {
    const response = await provider.requestJson<{ data?: unknown }>(
      "/models",
      { method: "GET", retry: false },
      {
        signal: deadline.signal,
        deadlineAt: deadline.at,
        budgetMs,
        budgetLayer: "tool",
        traceId: context.traceId,
        callKey: context.callKey,
      },
    );
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
      // Any HTTP answer means the endpoint is up; 401/403 then say the key is wrong.
      status: httpStatus !== undefined ? "reachable" : "unreachable",
      latency_ms: Math.round(now() - started),
      ...(httpStatus !== undefined ? { http_status: httpStatus } : {}),
      ...(httpStatus === 401 || httpStatus === 403 ? { auth: "rejected" } : {}),
      error_code: failure.code,
      message: failure.message,
    };
  } finally {
    deadline.dispose();
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
        const provider = context.services.providers[name];
        if (!provider) {
          return Promise.resolve({ provider: name, status: "not_configured", set: PROVIDER_VARIABLE[name] });
        }
        return probe(context, name, provider);
      }),
    );
    const configured = providers.filter((item) => item.status !== "not_configured");
    const healthy =
      configured.length > 0 &&
      configured.every((item) => item.status === "reachable" && !("error_code" in item));
    return { status: "success", healthy, providers };
  },
});
