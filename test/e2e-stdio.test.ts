/**
 * End to end over real stdio: the official MCP SDK client spawns `node dist/cli.js stdio` whose
 * GLM provider is the fake provider (a loopback HTTP server in this process).
 * Issue acceptance a, b, e (cancellation through MCP), g, h, j.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { startFakeProvider, type FakeProvider } from "../src/testing/fake-provider.js";
import {
  clock,
  connectStdioClient,
  fastEnv,
  REPO_ROOT,
  structured,
  tempDir,
  type StdioClient,
} from "./support/harness.js";

const CORE_TOOLS = [
  "chat",
  "thinkdeep",
  "analyze",
  "debug",
  "codereview",
  "challenge",
  "listmodels",
  "version",
];

// One server process for the tests of the first two groups (spawning one costs ~0.5–2 s): each test
// starts from a reset fake provider and its own continuation ids, so none depends on another's state.
let fake: FakeProvider;
let client: StdioClient;
let data: { path: string; cleanup: () => void };
/** A root holding `.env` files with a secret (the bad-input test). */
let secretDir: { path: string; cleanup: () => void };
const secret = "SUPER-SECRET-VALUE-42";

beforeAll(async () => {
  fake = await startFakeProvider();
  data = tempDir("exai-e2e-");
  secretDir = tempDir("exai-secret-");
  writeFileSync(join(secretDir.path, ".env"), `API_TOKEN=${secret}\n`);
  writeFileSync(join(secretDir.path, ".env.local"), `API_TOKEN=${secret}\n`);
  client = await connectStdioClient(
    fastEnv({
      GLM_API_KEY: "test-glm-key",
      GLM_API_URL: fake.url,
      EXAI_DATA_DIR: data.path,
      EXAI_ALLOWED_ROOTS: `${REPO_ROOT},${secretDir.path}`,
      // Long enough that the cancellation test's hung call cannot end by its tool timeout first.
      SIMPLE_TOOL_TIMEOUT_SECS: "5",
      // Frequent enough that a 0.9 s call reports progress several times.
      EXAI_WS_PROGRESS_INTERVAL_SECS: "0.2",
      EXPERT_HEARTBEAT_INTERVAL_SECS: "0.2",
    }),
  );
});

beforeEach(() => fake.reset());

afterAll(async () => {
  await client?.close();
  await fake?.close();
  data?.cleanup();
  secretDir?.cleanup();
});

const requestText = (index: number) => JSON.stringify(fake.chatRequests()[index]?.body ?? {});

describe("MCP over stdio", () => {
  it("lists the tools with object input schemas, and runs a 3-step codereview of real files with the expert analysis at the end", async () => {
    const { tools } = await client.client.listTools();
    const names = tools.map((tool) => tool.name);
    for (const name of CORE_TOOLS) expect(names).toContain(name);
    for (const tool of tools) expect(tool.inputSchema.type).toBe("object");

    const files = [join(REPO_ROOT, "src/timing/deadline.ts"), join(REPO_ROOT, "src/timing/retry.ts")];
    const step = (number: number, continuationId?: string) => ({
      step: `Review step ${number}: check deadline and retry handling`,
      step_number: number,
      total_steps: 3,
      next_step_required: number < 3,
      findings: `Findings of step ${number}: timers are unref'd; backoff is capped.`,
      relevant_files: files,
      files_checked: files,
      confidence: number < 3 ? "medium" : "high",
      ...(continuationId ? { continuation_id: continuationId } : {}),
    });
    const first = structured(await client.client.callTool({ name: "codereview", arguments: step(1) }));
    expect(first.status).toBe("pause_for_code_review");
    expect(first.required_actions).toBeInstanceOf(Array);
    const continuationId = first.continuation_id as string;
    expect(continuationId).toMatch(/^[0-9a-f-]{36}$/);
    const second = structured(
      await client.client.callTool({ name: "codereview", arguments: step(2, continuationId) }),
    );
    expect(second.status).toBe("pause_for_code_review");
    expect(second.continuation_id).toBe(continuationId);
    expect(fake.chatRequests()).toHaveLength(0); // no model call before the final step

    fake.enqueue({
      reply: { content: JSON.stringify({ status: "review_complete", summary: "looks sound", issues: [] }) },
    });
    const third = structured(
      await client.client.callTool({ name: "codereview", arguments: step(3, continuationId) }),
    );
    expect(third.status).toBe("calling_expert_analysis");
    expect(third.continuation_id).toBe(continuationId);
    expect(third.expert_analysis).toEqual({ status: "review_complete", summary: "looks sound", issues: [] });
    expect((third.metadata as Record<string, unknown>).trace_id).toBeTruthy();

    expect(fake.chatRequests()).toHaveLength(1);
    const sent = requestText(0);
    expect(sent).toContain(`--- BEGIN FILE: ${files[0]} ---`);
    expect(sent).toContain(`--- BEGIN FILE: ${files[1]} ---`);
    // Line-numbered content of the real file.
    expect(sent).toMatch(/ {3}1│ \/\*\*/);
    expect(sent).toContain("export function startDeadline");
    expect(sent).toContain("Findings of step 1");
    expect(sent).toContain("Findings of step 2");
  });

  it("chat twice on one continuation_id: the second provider request contains the first turn", async () => {
    const first = structured(
      await client.client.callTool({ name: "chat", arguments: { prompt: "What is the capital of France?" } }),
    );
    expect(first.status).toBe("success");
    const continuationId = first.continuation_id as string;
    const second = structured(
      await client.client.callTool({
        name: "chat",
        arguments: { prompt: "And of Italy?", continuation_id: continuationId },
      }),
    );
    expect(second.continuation_id).toBe(continuationId);
    const sent = requestText(1);
    expect(sent).toContain("What is the capital of France?");
    expect(sent).toContain(String(first.content).slice(0, 40));
    expect(sent).toContain("And of Italy?");
  });

  // A bound across two processes: 1 s, which a loaded machine cannot break; the 100 ms bound is
  // checked in-process (pipeline-provider.test.ts, "cancelling a running call").
  it("the client cancelling a running chat aborts the provider request within 1 s", async () => {
    fake.enqueue({ fault: { kind: "hang_before_headers" } });
    const controller = new AbortController();
    const pending = client.client.callTool({ name: "chat", arguments: { prompt: "slow one" } }, undefined, {
      signal: controller.signal,
    });
    await fake.waitForRequests(1, 3000);
    const cancelledAt = clock();
    controller.abort();
    await expect(pending).rejects.toThrow();
    const deadline = clock() + 1000;
    while (fake.chatRequests()[0]?.abortedAt === undefined && clock() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 5));
    const abortedAt = fake.chatRequests()[0]?.abortedAt;
    expect(abortedAt).toBeDefined();
    expect((abortedAt as number) - cancelledAt).toBeLessThan(1000);
    // The server keeps serving.
    expect((await client.client.listTools()).tools.length).toBeGreaterThan(0);
  });

  it("progress notifications reach a client that asks for them", async () => {
    fake.setDefaultDelay(900);
    const messages: string[] = [];
    const result = structured(
      await client.client.callTool({ name: "chat", arguments: { prompt: "take your time" } }, undefined, {
        onprogress: (progress) => messages.push(progress.message ?? ""),
      }),
    );
    expect(result.status).toBe("success");
    expect(messages.length).toBeGreaterThanOrEqual(3);
    expect(messages[0]).toMatch(/chat: .*elapsed, .* left/);
  });
});

describe("bad input: a clear error, the server keeps serving, no secret reaches a provider", () => {
  it("answers each bad request with the right code and a message naming the field, path or model", async () => {
    const dir = secretDir.path;
    const call = async (name: string, args: Record<string, unknown>) => {
      const result = (await client.client.callTool({ name, arguments: args })) as { isError?: boolean };
      expect(result.isError).toBe(true);
      return structured(result);
    };
    const workflow = {
      step: "s",
      step_number: 1,
      total_steps: 1,
      next_step_required: false,
      findings: "f",
      use_assistant_model: false,
    };

    const missing = await call("chat", {});
    expect(missing.code).toBe("INVALID_ARGUMENT");
    expect(missing.message).toMatch(/prompt/);

    const tooFar = await call("debug", { ...workflow, step_number: 3, total_steps: 2 });
    expect(tooFar.code).toBe("INVALID_ARGUMENT");
    expect(tooFar.message).toMatch(/step_number/);

    const blank = await call("analyze", { ...workflow, findings: "   " });
    expect(blank.code).toBe("INVALID_ARGUMENT");
    expect(blank.message).toMatch(/findings/);

    const relative = await call("codereview", { ...workflow, relevant_files: ["src/cli.ts"] });
    expect(relative.code).toBe("INVALID_ARGUMENT");
    expect(relative.message).toMatch(/relevant_files\[0\].*src\/cli\.ts.*absolute/);

    const outside = await call("chat", { prompt: "read this", files: ["/etc/hostname"] });
    expect(outside.code).toBe("FILE_ACCESS_DENIED");
    expect(outside.message).toContain("/etc/hostname");

    for (const name of [".env", ".env.local"]) {
      const denied = await call("chat", { prompt: "read this", files: [join(dir, name)] });
      expect(denied.code).toBe("FILE_ACCESS_DENIED");
      expect(denied.message).toContain(name);
    }
    // A directory holding the secret: expanded without it.
    const ok = structured(
      await client.client.callTool({ name: "chat", arguments: { prompt: "read the dir", files: [dir] } }),
    );
    expect(ok.status).toBe("success");

    const unknownModel = await call("chat", { prompt: "hi", model: "gpt-nonexistent-9" });
    expect(unknownModel.code).toBe("MODEL_NOT_FOUND");
    expect(unknownModel.message).toContain("gpt-nonexistent-9");

    const unknownTool = await call("no_such_tool", {});
    expect(unknownTool.code).toBe("INVALID_ARGUMENT");

    // Still serving, and no provider request ever carried the secret.
    expect((await client.client.listTools()).tools.length).toBeGreaterThan(0);
    for (const request of fake.requests) expect(JSON.stringify(request.body)).not.toContain(secret);
  });

  it("accepts tool names with the _EXAI-WS suffix", async () => {
    const result = structured(await client.client.callTool({ name: "version_EXAI-WS", arguments: {} }));
    expect(result.status).toBe("success");
  });
});

describe("no provider configured", () => {
  // One process for both checks: the server `npm start` runs has no provider configured.
  it("`npm start` serves MCP on stdio (npm's banner lines are skipped by the client); it lists tools, runs a workflow step without a model, and chat answers NO_PROVIDER naming the variables", async () => {
    const bare = tempDir("exai-e2e-npm-");
    const npm = process.platform === "win32" ? "npm.cmd" : "npm";
    const { StdioClientTransport } = await import("@modelcontextprotocol/sdk/client/stdio.js");
    const { Client } = await import("@modelcontextprotocol/sdk/client/index.js");
    const transport = new StdioClientTransport({
      command: npm,
      args: ["start"],
      cwd: REPO_ROOT,
      env: {
        PATH: process.env.PATH ?? "",
        HOME: process.env.HOME ?? "",
        // The developer's own user file must not configure a provider here.
        EXAI_ENV_FILE: "off",
        EXAI_DATA_DIR: bare.path,
        EXAI_LOG_LEVEL: "warn",
      },
      stderr: "pipe",
    });
    const mcp = new Client({ name: "npm-start-test", version: "1.0.0" });
    mcp.onerror = () => undefined; // npm's banner lines are not JSON-RPC: the SDK reports and skips them
    await mcp.connect(transport);
    try {
      const { tools } = await mcp.listTools();
      expect(tools.map((tool) => tool.name)).toContain("chat");
      expect(tools.length).toBeGreaterThanOrEqual(CORE_TOOLS.length);
      const started = clock();
      const local = structured(
        await mcp.callTool({
          name: "debug",
          arguments: {
            step: "look",
            step_number: 1,
            total_steps: 1,
            next_step_required: false,
            findings: "found it",
            use_assistant_model: false,
          },
        }),
      );
      expect(local.status).toBe("local_work_complete");
      expect(clock() - started).toBeLessThan(1000);
      const chat = (await mcp.callTool({ name: "chat", arguments: { prompt: "hi" } })) as {
        isError?: boolean;
      };
      expect(chat.isError).toBe(true);
      const error = structured(chat);
      expect(error.code).toBe("NO_PROVIDER");
      for (const name of ["GLM_API_KEY", "KIMI_API_KEY", "CUSTOM_API_URL"])
        expect(error.message).toContain(name);
    } finally {
      await mcp.close();
      bare.cleanup();
    }
  });
});
