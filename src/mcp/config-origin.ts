/**
 * What a client and the daemon tell each other about their configuration (hello / hello_ack
 * `config`): where it comes from, and short hashes of the provider settings, so a shim can say
 * which provider variables of its environment the shared daemon does not share — without
 * revealing a key.
 */
import { createHash } from "node:crypto";
import type { Config } from "../config/load.js";

/** The provider variables a fingerprint covers, and how to read each from a Config. */
const FINGERPRINTED: ReadonlyArray<[string, (config: Config) => string | undefined]> = [
  ["GLM_API_KEY", (config) => config.providers.glm?.apiKey],
  ["GLM_API_URL", (config) => config.providers.glm?.baseUrl],
  ["KIMI_API_KEY", (config) => config.providers.kimi?.apiKey],
  ["KIMI_API_URL", (config) => config.providers.kimi?.baseUrl],
  ["CUSTOM_API_URL", (config) => config.providers.custom?.baseUrl],
  ["CUSTOM_API_KEY", (config) => config.providers.custom?.apiKey],
  ["CUSTOM_MODEL_NAME", (config) => config.providers.custom?.models.join(",")],
];

/**
 * Short hashes (sha256, 12 hex digits) of the provider settings of a Config, by variable name;
 * "unset" for a provider that is not configured. Two fingerprints differ exactly where the
 * provider settings differ, without revealing a key.
 */
export function providerFingerprintOf(config: Config): Record<string, string> {
  const fingerprint: Record<string, string> = {};
  for (const [name, read] of FINGERPRINTED) {
    const value = read(config);
    fingerprint[name] =
      value === undefined ? "unset" : createHash("sha256").update(value, "utf8").digest("hex").slice(0, 12);
  }
  return fingerprint;
}

/** The variables whose fingerprints differ (a variable missing on one side counts as "unset"). */
export function fingerprintDifferences(
  ours: Record<string, string>,
  theirs: Record<string, string>,
): string[] {
  const names = new Set([...Object.keys(ours), ...Object.keys(theirs)]);
  return [...names].filter((name) => (ours[name] ?? "unset") !== (theirs[name] ?? "unset")).sort();
}

/** Where a configuration came from (the parts of `Config.source` the protocol carries). */
export interface ConfigOrigin {
  file?: string;
  searched?: string;
  fileSha256?: string;
}

/** The configuration origin a Config reports (empty for a Config built without one, e.g. in tests). */
export function configOrigin(config: Config): ConfigOrigin {
  return (config.source as ConfigOrigin | undefined) ?? {};
}
