/** The model registry: catalogue, aliases, retired ids, allow-lists, `auto`, unknown names (SPEC §5). */
import { describe, expect, it } from "vitest";
import { thinkingFields } from "../src/providers/request.js";
import { createModelRegistry, loadCatalogue, parseCatalogue } from "../src/providers/registry.js";
import { makeConfig } from "./support/harness.js";

const registry = (env: Record<string, string> = {}) =>
  createModelRegistry(makeConfig({ GLM_API_KEY: "g", KIMI_API_KEY: "k", ...env }));

describe("model registry", () => {
  it("resolves aliases and says so", () => {
    const resolved = registry().resolve("flash");
    expect(resolved.model.id).toBe("glm-4.5-flash");
    expect(resolved.note).toMatch(/alias flash → glm-4.5-flash/);
    expect(registry().resolve("kimi").model.id).toBe("kimi-k2.6");
    expect(registry().resolve("glm").model.id).toBe("glm-5");
  });

  it("serves retired Kimi ids by kimi-k2.6 and says they were retired", () => {
    for (const id of [
      "kimi-k2-0905-preview",
      "kimi-k2-0711-preview",
      "kimi-k2-turbo-preview",
      "kimi-latest",
      "kimi-thinking-preview",
    ]) {
      const resolved = registry().resolve(id);
      expect(resolved.model.id).toBe("kimi-k2.6");
      expect(resolved.note).toMatch(/retired/);
    }
  });

  it("accepts an uncatalogued name when its provider is unambiguous, with conservative limits", () => {
    const glm = registry().resolve("glm-9-preview");
    expect(glm.model.provider).toBe("glm");
    expect(glm.model.uncatalogued).toBe(true);
    expect(glm.model.contextWindow).toBeLessThanOrEqual(32_768);
    expect(registry().resolve("kimi:some-new-model").model.provider).toBe("kimi");
    expect(registry().resolve("moonshot-v2-8k").model.provider).toBe("kimi");
  });

  it("rejects an unknown name with MODEL_NOT_FOUND naming it and listing what is available", () => {
    expect(() => registry().resolve("gpt-5")).toThrow(/unknown model "gpt-5"; available: .*glm-4.5-flash/);
  });

  it("says which variable enables a provider that is not configured", () => {
    const onlyGlm = createModelRegistry(makeConfig({ GLM_API_KEY: "g" }));
    expect(() => onlyGlm.resolve("kimi-k2.6")).toThrow(/KIMI_API_KEY/);
    const none = createModelRegistry(makeConfig({}));
    expect(() => none.resolve("auto")).toThrow(/GLM_API_KEY.*KIMI_API_KEY.*CUSTOM_API_URL/);
  });

  it("applies allow-lists", () => {
    const limited = registry({ GLM_ALLOWED_MODELS: "glm-4.5-flash" });
    expect(limited.resolve("glm-4.5-flash").model.id).toBe("glm-4.5-flash");
    expect(() => limited.resolve("glm-4.6")).toThrow(/GLM_ALLOWED_MODELS/);
    expect(
      limited
        .available()
        .filter((model) => model.provider === "glm")
        .map((model) => model.id),
    ).toEqual(["glm-4.5-flash"]);
  });

  it("auto picks the fast model for small requests and the long-context model for large ones", () => {
    expect(registry().resolve("auto", 1000).model.id).toBe("glm-4.5-flash");
    expect(registry().resolve("auto", 120_000).model.id).toBe("kimi-k2.6");
    const kimiOnly = createModelRegistry(makeConfig({ KIMI_API_KEY: "k" }));
    expect(kimiOnly.resolve("auto", 10).model.provider).toBe("kimi");
  });

  it("serves custom endpoint models by name", () => {
    const custom = createModelRegistry(
      makeConfig({ CUSTOM_API_URL: "http://localhost:11434/v1", CUSTOM_MODEL_NAME: "llama3.2,qwen3" }),
    );
    expect(custom.resolve("qwen3").model.provider).toBe("custom");
    expect(custom.resolve("auto").model.provider).toBe("custom");
  });

  it("maps thinking modes to the provider switch", () => {
    const toggle = registry().resolve("glm-4.6").model;
    const effort = registry().resolve("glm-5.2").model;
    const none = registry().resolve("moonshot-v1-8k").model;
    expect(thinkingFields(toggle, "minimal")).toEqual({ thinking: { type: "disabled" } });
    expect(thinkingFields(toggle, "high")).toEqual({ thinking: { type: "enabled" } });
    expect(thinkingFields(effort, "max")).toEqual({
      thinking: { type: "enabled" },
      reasoning_effort: "high",
    });
    expect(thinkingFields(effort, "low")).toMatchObject({ reasoning_effort: "low" });
    expect(thinkingFields(none, "high")).toEqual({});
  });
});

describe("catalogue parsing", () => {
  const model = {
    id: "glm-test",
    provider: "glm",
    contextWindow: 1000,
    maxOutput: 100,
    thinking: "toggle",
    thinkingDefault: false,
    images: false,
    webSearch: false,
    temperature: null,
    aliases: [],
    description: "test model",
  };

  it("the shipped catalogue parses, and every model has a known provider and thinking switch", () => {
    const models = loadCatalogue();
    expect(models.length).toBeGreaterThan(5);
    for (const entry of models) {
      expect(["glm", "kimi", "custom"]).toContain(entry.provider);
      expect(["none", "toggle", "effort"]).toContain(entry.thinking);
    }
  });

  it("an entry with a wrong field fails at load, naming the entry and the field", () => {
    expect(parseCatalogue(JSON.stringify({ models: [model] }))[0]?.id).toBe("glm-test");
    const broken = JSON.stringify({ models: [model, { ...model, id: "x", thinking: "sometimes" }] });
    expect(() => parseCatalogue(broken)).toThrow(/catalogue is invalid at models\.1\.thinking/);
    const misspelt = JSON.stringify({ models: [{ ...model, maxOuptut: 100 }] });
    expect(() => parseCatalogue(misspelt)).toThrow(/models\.0/);
    expect(() => parseCatalogue("{")).toThrow(/not JSON/);
  });
});
