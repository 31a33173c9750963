/**
 * Tool profiles (SPEC §4.1) and context economy (SPEC §4: the full profile's tools/list stays
 * under 10,000 tokens).
 */
import { describe, expect, it } from "vitest";
import { ExaiError } from "../src/base/errors.js";
import { createLogger } from "../src/base/logging.js";
import { createRuntime } from "../src/runtime/runtime.js";
import { listTools } from "../src/mcp/server.js";
import { TOOLS_LIST_TOKEN_LIMIT, toolsListSize, toolsListTokens } from "../src/tools/catalog-size.js";
import { allTools, FULL_TOOLS, LEAN_TOOLS, selectTools, STANDARD_TOOLS } from "../src/tools/index.js";
import { getTokenCounter } from "../src/memory/tokenizer.js";
import { fastEnv, makeConfig, tempDir } from "./support/harness.js";

const names = (profile: "lean" | "standard" | "full", enabled: string[] = [], disabled: string[] = []) =>
  selectTools({ profile, enabled, disabled }).map((tool) => tool.name);

function caught(action: () => unknown): ExaiError {
  try {
    action();
  } catch (error) {
    if (ExaiError.is(error)) return error;
    throw error;
  }
  throw new Error("expected an ExaiError");
}

describe("profiles", () => {
  it("every profile name is an implemented tool, and every tool belongs to the full profile", () => {
    const implemented = allTools().map((tool) => tool.name);
    expect([...FULL_TOOLS].filter((name) => !implemented.includes(name))).toEqual([]);
    expect(implemented.filter((name) => !(FULL_TOOLS as readonly string[]).includes(name))).toEqual([]);
    expect(new Set(implemented).size).toBe(implemented.length);
  });

  it("lists exactly 11 / 29 / 31 tools for lean / standard / full, in profile order", () => {
    expect(names("lean")).toEqual([...LEAN_TOOLS]);
    expect(names("lean")).toHaveLength(11);
    expect(names("standard")).toEqual([...STANDARD_TOOLS]);
    expect(names("standard")).toHaveLength(29);
    expect(names("full")).toEqual([...FULL_TOOLS]);
    expect(names("full")).toHaveLength(31);
    expect(names("full").slice(-2)).toEqual(["smart_file_query", "kimi_manage_files"]);
  });

  it("ENABLED_TOOLS adds to a profile; DISABLED_TOOLS removes, except version and listmodels", () => {
    expect(names("lean", ["glm_web_search"])).toContain("glm_web_search");
    const trimmed = names("standard", [], ["version", "listmodels", "chat", "health"]);
    expect(trimmed).toContain("version");
    expect(trimmed).toContain("listmodels");
    expect(trimmed).not.toContain("chat");
    expect(trimmed).not.toContain("health");
  });

  it("an unknown name in ENABLED_TOOLS is CONFIG_INVALID listing the valid names", () => {
    const error = caught(() => names("standard", ["chat", "no_such_tool"]));
    expect(error.code).toBe("CONFIG_INVALID");
    expect(error.message).toContain("ENABLED_TOOLS");
    expect(error.message).toContain("no_such_tool");
    expect(error.message).toContain("kimi_manage_files");
    expect(error.message).toContain("provider_capabilities");
  });

  it("the runtime refuses to start with an unknown DISABLED_TOOLS name", () => {
    const data = tempDir("exai-profile-");
    try {
      const config = makeConfig(fastEnv({ EXAI_DATA_DIR: data.path, DISABLED_TOOLS: "chat,bogus" }));
      const error = caught(() =>
        createRuntime(config, { mode: "stdio", logger: createLogger({ level: "silent" }) }),
      );
      expect(error.code).toBe("CONFIG_INVALID");
      expect(error.message).toContain("DISABLED_TOOLS");
      expect(error.message).toContain("bogus");
    } finally {
      data.cleanup();
    }
  });
});

describe("context economy", () => {
  it("the full profile's tools/list stays under 10,000 tokens", () => {
    const full = toolsListSize("full");
    expect(full.tools).toBe(names("full").length);
    expect(full.tokens).toBeLessThan(TOOLS_LIST_TOKEN_LIMIT);
  });

  it("counts the tokens of the listing itself, with the tokenizer the budgets use", () => {
    // An independent count over the JSON a client receives: a size function that counted
    // something else (characters, one tool, the schema without descriptions) would differ.
    const listing = listTools(selectTools({ profile: "lean", enabled: [], disabled: [] }));
    const json = JSON.stringify({ tools: listing });
    const independent = getTokenCounter().count(json);
    expect(toolsListTokens("lean")).toBe(independent);
    expect(independent).toBeGreaterThan(json.length / 8);
    expect(independent).toBeLessThan(json.length / 2);
  });

  it("counts per profile, smaller profiles costing fewer tokens", () => {
    const lean = toolsListSize("lean");
    const standard = toolsListSize("standard");
    const full = toolsListSize("full");
    expect(lean.tokens).toBeLessThan(standard.tokens);
    expect(standard.tokens).toBeLessThan(full.tokens);
    // The per-tool counts cover the listing (JSON punctuation between entries aside).
    const sum = Object.values(full.perTool).reduce((total, tokens) => total + tokens, 0);
    expect(Math.abs(sum - full.tokens)).toBeLessThan(full.tools * 3 + 10);
  });

  it("measures the listing the MCP server sends", async () => {
    // What a real MCP client receives over the in-memory transport, not a second call of the same helper.
    const { Client } = await import("@modelcontextprotocol/sdk/client/index.js");
    const { InMemoryTransport } = await import("@modelcontextprotocol/sdk/inMemory.js");
    const { createMcpServer } = await import("../src/mcp/server.js");
    const data = tempDir("exai-profiles-listing-");
    try {
      const runtime = createRuntime(
        makeConfig(fastEnv({ EXAI_DATA_DIR: data.path, TOOL_PROFILE: "standard" })),
        { mode: "stdio", logger: createLogger({ level: "silent" }) },
      );
      const server = createMcpServer(runtime, { sessionId: "profiles-test" });
      const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
      const client = new Client({ name: "profiles-test", version: "1" });
      await Promise.all([server.connect(serverSide), client.connect(clientSide)]);
      const { tools } = await client.listTools();
      expect(tools.map((tool) => tool.name)).toEqual(names("standard"));
      expect(toolsListSize("standard").characters).toBe(JSON.stringify({ tools }).length);
      await client.close();
      await runtime.close();
    } finally {
      data.cleanup();
    }
  });

  it("every tool has a concise description and an object input schema", () => {
    for (const tool of listTools(allTools())) {
      expect(tool.description?.length ?? 0, tool.name).toBeGreaterThan(20);
      expect(tool.description?.length ?? 0, tool.name).toBeLessThanOrEqual(300);
      expect(tool.inputSchema.type).toBe("object");
    }
  });
});
