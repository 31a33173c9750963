/**
 * The model registry (SPEC §5): the shipped catalogue, aliases, allow-lists, `auto`, and the rule
 * that a model name the catalogue does not know is still accepted when its provider is unambiguous.
 */
import { readFileSync } from "node:fs";
import { z } from "zod";
import { PROVIDER_NAMES, type Config, type ProviderName } from "../config/load.js";
import { ExaiError } from "../base/errors.js";

type ThinkingSupport = "none" | "toggle" | "effort";

export interface ModelInfo {
  id: string;
  provider: ProviderName;
  /** Tokens. */
  contextWindow: number;
  /** Tokens. */
  maxOutput: number;
  thinking: ThinkingSupport;
  thinkingDefault: boolean;
  images: boolean;
  webSearch: boolean;
  /** null = fixed by the provider: never send a temperature. */
  temperature: { min: number; max: number; default: number } | null;
  aliases: string[];
  retiredAliases?: string[];
  description: string;
  /** True for a name the catalogue does not know (conservative capabilities). */
  uncatalogued?: boolean;
}

export interface ResolvedModel {
  model: ModelInfo;
  /** What the caller asked for ("auto", an alias, a retired id…). */
  requested: string;
  /** Set when the name was a retired id or an alias, for the result's metadata. */
  note?: string;
}

/** One model of catalogue.json: the shape `ModelInfo` is checked against at load. */
const catalogueModelSchema = z.strictObject({
  id: z.string().min(1),
  provider: z.enum(PROVIDER_NAMES),
  contextWindow: z.number().int().positive(),
  maxOutput: z.number().int().positive(),
  thinking: z.enum(["none", "toggle", "effort"]),
  thinkingDefault: z.boolean(),
  images: z.boolean(),
  webSearch: z.boolean(),
  temperature: z.object({ min: z.number(), max: z.number(), default: z.number() }).nullable(),
  aliases: z.array(z.string().min(1)),
  retiredAliases: z.array(z.string().min(1)).optional(),
  description: z.string(),
});

const catalogueSchema = z.object({
  $comment: z.string().optional(),
  models: z.array(catalogueModelSchema).min(1),
});

/**
 * Parses the catalogue's JSON text (`{models: ModelInfo[]}`).
 * @throws ExaiError INTERNAL naming the first invalid entry and field: the shipped file is broken.
 */
export function parseCatalogue(text: string): ModelInfo[] {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new ExaiError(
      "INTERNAL",
      `the model catalogue is not JSON (${(error as Error).message}); reinstall exai-mcp`,
    );
  }
  const parsed = catalogueSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue ? issue.path.map(String).join(".") : "catalogue";
    throw new ExaiError(
      "INTERNAL",
      `the model catalogue is invalid at ${where}: ${issue?.message ?? "unknown"}; reinstall exai-mcp`,
      { details: { field: where } },
    );
  }
  return parsed.data.models.map(({ retiredAliases, ...model }) => ({
    ...model,
    ...(retiredAliases ? { retiredAliases } : {}),
  }));
}

/** Loads and parses the catalogue shipped beside the compiled code. */
export function loadCatalogue(): ModelInfo[] {
  return parseCatalogue(readFileSync(new URL("./catalogue.json", import.meta.url), "utf8"));
}

const PROVIDER_KEY: Record<ProviderName, string> = {
  glm: "GLM_API_KEY",
  kimi: "KIMI_API_KEY",
  custom: "CUSTOM_API_URL",
};

export interface ModelRegistry {
  /** Every model available with the configured providers (after allow-lists). */
  available(): ModelInfo[];
  /** Every catalogue model, configured or not. */
  catalogue(): ModelInfo[];
  configuredProviders(): ProviderName[];
  /**
   * Resolves a name, alias, `provider:name` or `auto` (estimatedTokens = size of the request, used
   * by `auto` to pick a long-context model).
   * @throws ExaiError NO_PROVIDER (naming the variables to set), MODEL_NOT_FOUND (naming the model
   *   and listing what is available).
   */
  resolve(name: string | undefined, estimatedTokens?: number): ResolvedModel;
}

export function createModelRegistry(config: Config, catalogue: ModelInfo[] = loadCatalogue()): ModelRegistry {
  const configured = (Object.keys(config.providers) as ProviderName[]).filter(
    (name) => config.providers[name],
  );
  const byName = new Map<string, ModelInfo>();
  for (const model of catalogue) {
    byName.set(model.id.toLowerCase(), model);
    for (const alias of model.aliases) byName.set(alias.toLowerCase(), model);
  }
  const customModels = customModelsOf(config);

  const allowed = (model: ModelInfo): boolean => {
    const list = config.providers[model.provider]?.allowedModels ?? [];
    return list.length === 0 || list.some((entry) => entry.toLowerCase() === model.id.toLowerCase());
  };
  const available = (): ModelInfo[] => [
    ...catalogue.filter((model) => configured.includes(model.provider) && allowed(model)),
    ...customModels,
  ];

  const requireProvider = (model: ModelInfo, requested: string): void => {
    if (!configured.includes(model.provider)) {
      if (configured.length === 0) throw noProviderError();
      throw new ExaiError(
        "NO_PROVIDER",
        `model ${requested} needs the ${model.provider} provider, which is not configured: set ${PROVIDER_KEY[model.provider]}, or pick one of: ${available()
          .map((m) => m.id)
          .join(", ")}`,
        { details: { model: requested, variables: [PROVIDER_KEY[model.provider]] } },
      );
    }
    if (!allowed(model)) {
      throw new ExaiError(
        "MODEL_NOT_FOUND",
        `model ${requested} is not in ${model.provider.toUpperCase()}_ALLOWED_MODELS; allowed: ${(config.providers[model.provider]?.allowedModels ?? []).join(", ")}`,
        { details: { model: requested } },
      );
    }
  };

  const pickAuto = (estimatedTokens: number): ResolvedModel => {
    if (configured.length === 0) throw noProviderError();
    const candidates: string[] = [];
    const fast = byName.get(config.fastModelDefault.toLowerCase());
    const long = byName.get(config.longModelDefault.toLowerCase());
    // Small requests go to the fast model when it fits comfortably (≤ 50 % of its window).
    if (fast && estimatedTokens <= fast.contextWindow * 0.5) candidates.push(fast.id);
    if (long) candidates.push(long.id);
    if (fast) candidates.push(fast.id);
    for (const id of candidates) {
      const model = byName.get(id.toLowerCase());
      if (
        model &&
        configured.includes(model.provider) &&
        allowed(model) &&
        estimatedTokens <= model.contextWindow * 0.6
      ) {
        return { model, requested: "auto" };
      }
    }
    // Otherwise the largest-context model available.
    const fallback = [...available()].sort((a, b) => b.contextWindow - a.contextWindow)[0];
    if (!fallback) throw noProviderError();
    return { model: fallback, requested: "auto" };
  };

  return {
    available,
    catalogue: () => [...catalogue],
    configuredProviders: () => [...configured],
    resolve(name, estimatedTokens = 0) {
      const requested = (name ?? config.defaultModel).trim();
      if (requested === "" || requested.toLowerCase() === "auto") return pickAuto(estimatedTokens);
      const prefixed = /^(glm|kimi|custom):(.+)$/i.exec(requested);
      const bare = (prefixed ? (prefixed[2] as string) : requested).trim();
      const customModel = customModels.find((model) => model.id.toLowerCase() === bare.toLowerCase());
      if (customModel && (!prefixed || prefixed[1]?.toLowerCase() === "custom"))
        return { model: customModel, requested };
      const known = byName.get(bare.toLowerCase());
      if (known && (!prefixed || prefixed[1]?.toLowerCase() === known.provider)) {
        requireProvider(known, requested);
        const retired = known.retiredAliases?.some((alias) => alias.toLowerCase() === bare.toLowerCase());
        const note = retired
          ? `${bare} was retired by the provider in 2026; served by ${known.id}`
          : known.id.toLowerCase() !== bare.toLowerCase()
            ? `alias ${bare} → ${known.id}`
            : undefined;
        return { model: known, requested, ...(note ? { note } : {}) };
      }
      const provider: ProviderName | undefined = prefixed
        ? (prefixed[1]?.toLowerCase() as ProviderName)
        : guessProvider(bare);
      if (provider) {
        const model = uncataloguedModel(bare, provider);
        requireProvider(model, requested);
        return {
          model,
          requested,
          note: `${bare} is not in the catalogue; sent to ${provider} with conservative limits`,
        };
      }
      if (configured.length === 0) throw noProviderError();
      throw new ExaiError(
        "MODEL_NOT_FOUND",
        `model: unknown model ${JSON.stringify(requested)}; available: ${available()
          .map((m) => m.id)
          .join(
            ", ",
          )}, or "auto". Prefix with glm:, kimi: or custom: to send a new model name to that provider`,
        { details: { field: "model", model: requested } },
      );
    },
  };
}

function noProviderError(): ExaiError {
  return new ExaiError(
    "NO_PROVIDER",
    "no model provider is configured: set GLM_API_KEY (Z.ai), KIMI_API_KEY (Moonshot) or CUSTOM_API_URL + CUSTOM_MODEL_NAME (any OpenAI-compatible endpoint) in the environment or .env, then restart",
    { details: { variables: ["GLM_API_KEY", "KIMI_API_KEY", "CUSTOM_API_URL"] } },
  );
}

/** What exai assumes of a model it knows nothing about: a small window, no thinking, images or search. */
function conservativeCapabilities(): Pick<
  ModelInfo,
  "contextWindow" | "maxOutput" | "thinking" | "thinkingDefault" | "images" | "webSearch" | "aliases"
> {
  return {
    contextWindow: 32_768,
    maxOutput: 4096,
    thinking: "none",
    thinkingDefault: false,
    images: false,
    webSearch: false,
    aliases: [],
  };
}

/** The models of the custom endpoint (CUSTOM_MODEL_NAME), with conservative capabilities. */
function customModelsOf(config: Config): ModelInfo[] {
  const custom = config.providers.custom;
  return (custom?.models ?? []).map((id) => ({
    id,
    provider: "custom",
    ...conservativeCapabilities(),
    temperature: { min: 0, max: 2, default: 0.3 },
    description: `custom endpoint model (${custom?.baseUrl ?? ""})`,
  }));
}

/** The provider an uncatalogued name plainly belongs to ("glm-…", "kimi-…", "moonshot-…"). */
function guessProvider(name: string): ProviderName | undefined {
  if (/^glm-/i.test(name)) return "glm";
  if (/^(kimi-|moonshot-)/i.test(name)) return "kimi";
  return undefined;
}

/** A model the catalogue does not know, with conservative limits. */
function uncataloguedModel(id: string, provider: ProviderName): ModelInfo {
  return {
    id,
    provider,
    ...conservativeCapabilities(),
    temperature: provider === "kimi" ? null : { min: 0, max: 1, default: 0.6 },
    description: "not in the catalogue: conservative capabilities",
    uncatalogued: true,
  };
}
