/**
 * Builds the configured providers (one keep-alive pool each) from the configuration.
 */
import type { Config, ProviderName } from "../config/load.js";
import { redactorFor, type Redactor } from "../base/redact.js";
import { createCustomProvider } from "./custom.js";
import { createGlmProvider } from "./glm.js";
import { createKimiProvider } from "./kimi.js";
import type { Provider, ProviderDependencies } from "./types.js";

export type Providers = Partial<Record<ProviderName, Provider>>;

/**
 * Creates a provider for every configured provider section. Close them with `closeProviders`.
 * `redactor` cleans provider error texts (default: one for the configuration's keys and token).
 */
export function createProviders(config: Config, redactor: Redactor = redactorFor(config)): Providers {
  const dependencies: ProviderDependencies = {
    timeouts: config.timeouts,
    retry: config.retry,
    limits: {
      ...(config.limits.streamChars !== undefined ? { streamChars: config.limits.streamChars } : {}),
      // A body larger than the largest message exai passes on could not be returned anyway.
      responseBytes: config.limits.messageBytes,
    },
    redact: redactor.text,
  };
  const providers: Providers = {};
  if (config.providers.glm) providers.glm = createGlmProvider(config.providers.glm, dependencies);
  if (config.providers.kimi) {
    providers.kimi = createKimiProvider(config.providers.kimi, {
      ...dependencies,
      webSearchTimeoutMs: config.timeouts.provider.kimiWebSearch,
    });
  }
  if (config.providers.custom) providers.custom = createCustomProvider(config.providers.custom, dependencies);
  return providers;
}

/** Closes every provider's connection pool. */
export async function closeProviders(providers: Providers): Promise<void> {
  await Promise.all(Object.values(providers).map((provider) => provider?.close()));
}
