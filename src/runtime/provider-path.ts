/**
 * The one path of every provider request of a tool call (SPEC §6): chat completions (`callModel`),
 * other endpoints (`providerRequest`: files, web search, `/models` probes) and body previews.
 * Each request
 *   - takes a slot of its provider's cap (EXAI_WS_<P>_MAX_INFLIGHT): the slot admission took for the
 *     call's provider while no other request of the call uses it, else a slot of its own;
 *   - runs under the call's deadline and signal (or a tighter sub-budget, clipped to them);
 *   - goes through the provider's retry policy when idempotent;
 *   - counts its attempts, provider and endpoint for the CALL SUMMARY.
 */
import type { ProviderName } from "../config/load.js";
import { ExaiError, type TimeoutLayer } from "../base/errors.js";
import type { Admission, Lease } from "../pipeline/admission.js";
import type { Providers } from "../providers/index.js";
import type { ChatResult, Provider, ProviderCallContext, TokenUsage } from "../providers/types.js";
import { abortReason, now, startDeadline, type Deadline } from "../timing/deadline.js";
import type { ModelCall, ProviderRequest, ToolContext } from "../tools/framework.js";

/** Most distinct endpoints one CALL SUMMARY lists. */
const MAX_ENDPOINTS = 10;

/** What the provider requests of one call add up to, for its CALL SUMMARY. */
export interface CallUsage {
  attempts: number;
  usage: TokenUsage;
  /** Providers the call sent requests to, in first-use order. */
  providers: ProviderName[];
  /** Distinct endpoints requested ("glm POST /web_search", "kimi chat kimi-k2-0905-preview"). */
  endpoints: string[];
}

/** A fresh, empty usage record. */
export function emptyUsage(): CallUsage {
  return {
    attempts: 0,
    usage: { promptTokens: 0, completionTokens: 0, totalTokens: 0 },
    providers: [],
    endpoints: [],
  };
}

interface ProviderPathOptions {
  providers: Providers;
  admission: Admission;
  /** The provider whose slot admission took for the call (its model's, or the tool's `selectProvider`). */
  admittedProvider: ProviderName | undefined;
  traceId: string;
  signal: AbortSignal;
  deadlineAt: number;
  budgetMs: number;
  layer: TimeoutLayer;
  /** Sets the phase shown by the call's heartbeats. */
  progress(message: string): void;
  usage: CallUsage;
}

type ProviderPath = Pick<ToolContext, "callModel" | "providerRequest" | "previewChatBody">;

/** The provider request functions of one tool call's context. */
export function createProviderPath(options: ProviderPathOptions): ProviderPath {
  const { providers, admission, usage } = options;
  const admitted = createAdmittedSlot(options.admittedProvider !== undefined);

  /**
   * A slot of `provider`'s cap for one request: the call's admitted slot when free; else a slot of
   * its own; when the cap is full and the call holds a slot of this provider, the request waits for
   * that slot (the call's own requests queue behind each other, never past the cap).
   */
  const takeSlot = async (provider: ProviderName): Promise<Lease> => {
    if (provider !== options.admittedProvider) return admission.acquireProvider(provider);
    const free = admitted.tryTake();
    if (free) return free;
    try {
      return admission.acquireProvider(provider);
    } catch (error) {
      if (!ExaiError.is(error) || error.code !== "OVER_CAPACITY") throw error;
      return admitted.wait(options.signal);
    }
  };

  const requireProvider = (name: ProviderName, what: string): Provider => {
    const provider = providers[name];
    if (provider) return provider;
    throw new ExaiError(
      "NO_PROVIDER",
      `${what} needs the ${name} provider, which is not configured; set ${name.toUpperCase()}_API_KEY${name === "custom" ? " / CUSTOM_API_URL" : ""} and restart`,
      { details: { provider: name } },
    );
  };

  const record = (provider: ProviderName, endpoint: string, attempts: number) => {
    usage.attempts += attempts;
    if (!usage.providers.includes(provider)) usage.providers.push(provider);
    const name = `${provider} ${endpoint}`;
    if (!usage.endpoints.includes(name) && usage.endpoints.length < MAX_ENDPOINTS) usage.endpoints.push(name);
  };

  /** Runs one request under a slot and the (sub-)deadline; counts its attempts either way. */
  const run = async <T>(
    provider: ProviderName,
    endpoint: string,
    limits: { budgetMs?: number | undefined; layer?: TimeoutLayer | undefined; hint?: string | undefined },
    send: (context: ProviderCallContext) => Promise<{ value: T; attempts: number }>,
  ): Promise<T> => {
    const slot = await takeSlot(provider);
    const sub: Deadline | undefined =
      limits.budgetMs !== undefined && limits.budgetMs < options.deadlineAt - now()
        ? startDeadline(Math.max(0, limits.budgetMs), limits.layer ?? "tool", options.signal, limits.hint)
        : undefined;
    try {
      const { value, attempts } = await send({
        signal: sub?.signal ?? options.signal,
        deadlineAt: sub?.at ?? options.deadlineAt,
        budgetMs: sub?.budgetMs ?? options.budgetMs,
        budgetLayer: sub?.layer ?? options.layer,
        traceId: options.traceId,
        onProgress: options.progress,
      });
      record(provider, endpoint, attempts);
      return value;
    } catch (error) {
      const attempts = ExaiError.is(error) ? error.details.attempts : undefined;
      record(provider, endpoint, Array.isArray(attempts) ? attempts.length : 1);
      throw error;
    } finally {
      sub?.dispose();
      slot.release();
    }
  };

  return {
    callModel(call: ModelCall): Promise<ChatResult> {
      const { budgetMs, layer, model, ...rest } = call;
      const name = model.model.provider;
      const provider = requireProvider(name, `model ${model.model.id}`);
      return run(name, `chat ${model.model.id}`, { budgetMs, layer: layer ?? "expert" }, async (context) => {
        const result = await provider.chat({ ...rest, model: model.model }, context);
        usage.usage.promptTokens += result.usage.promptTokens;
        usage.usage.completionTokens += result.usage.completionTokens;
        usage.usage.totalTokens += result.usage.totalTokens;
        return { value: result, attempts: result.attempts.length };
      });
    },
    providerRequest<T = unknown>(request: ProviderRequest): Promise<T> {
      const { provider: name, path, budgetMs, layer, timeoutHint, ...init } = request;
      const provider = requireProvider(name, `${init.method} ${path}`);
      return run(
        name,
        `${init.method} ${path.replace(/\/files\/[^/]+/, "/files/{id}")}`,
        { budgetMs, layer, hint: timeoutHint },
        async (context) => {
          const { value, attempts } = await provider.requestJson<T>(path, init, context);
          return { value, attempts: attempts.length };
        },
      );
    },
    previewChatBody(call: ModelCall) {
      const { budgetMs: _budget, layer: _layer, model, ...rest } = call;
      return requireProvider(model.model.provider, `model ${model.model.id}`).previewBody({
        ...rest,
        model: model.model,
      });
    },
  };
}

/** The one provider slot admission took for a call, shared by its requests one at a time. */
function createAdmittedSlot(held: boolean) {
  let free = held;
  const waiters: Array<{ resolve: (lease: Lease) => void }> = [];
  const lease = (): Lease => {
    let released = false;
    return {
      release() {
        if (released) return;
        released = true;
        const next = waiters.shift();
        // Handed straight to the next waiting request: the slot never looks free in between.
        if (next) next.resolve(lease());
        else free = true;
      },
    };
  };
  return {
    tryTake(): Lease | undefined {
      if (!free) return undefined;
      free = false;
      return lease();
    },
    /** Resolves with the slot once the request holding it releases it; rejects when `signal` aborts. */
    wait(signal: AbortSignal): Promise<Lease> {
      if (signal.aborted) return Promise.reject(abortReason(signal));
      return new Promise<Lease>((resolve, reject) => {
        const waiter = {
          resolve: (granted: Lease) => {
            signal.removeEventListener("abort", onAbort);
            resolve(granted);
          },
        };
        const onAbort = () => {
          const index = waiters.indexOf(waiter);
          if (index >= 0) waiters.splice(index, 1);
          reject(abortReason(signal));
        };
        signal.addEventListener("abort", onAbort, { once: true });
        waiters.push(waiter);
      });
    },
  };
}
