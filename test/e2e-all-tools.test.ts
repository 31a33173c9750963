/**
 * Every tool of the `full` profile through the official MCP SDK client over real stdio
 * (`node dist/cli.js stdio`, GLM and Kimi pointed at the fake provider), each with a check of what
 * its result means — not just "no error".
 */
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startFakeProvider, type FakeProvider } from "../src/testing/fake-provider.js";
import {
  connectStdioClient,
  fastEnv,
  providerEnv,
  structured,
  tempDir,
  type StdioClient,
} from "./support/harness.js";

let fake: FakeProvider;
let client: StdioClient;
let work: { path: string; cleanup: () => void };
let sample: string;
let repo: string;

beforeAll(async () => {
  fake = await startFakeProvider();
  work = tempDir("exai-all-tools-");
  sample = join(work.path, "sample.py");
  writeFileSync(sample, "def add(a, b):\n    return a + b\n");
  repo = join(work.path, "repo");
  const git = (...args: string[]) => execFileSync("git", ["-C", repo, ...args], { stdio: "ignore" });
  execFileSync("git", ["init", "-q", repo]);
  git("config", "user.email", "test@example.com");
  git("config", "user.name", "Test");
  writeFileSync(join(repo, "app.py"), "value = 1\n");
  git("add", "app.py");
  git("commit", "-q", "-m", "init");
  writeFileSync(join(repo, "app.py"), "value = 1\nlimit = 42  # STAGED-CHANGE\n");
  git("add", "app.py");
  client = await connectStdioClient(
    fastEnv({
      ...providerEnv(fake),
      TOOL_PROFILE: "full",
      EXAI_DATA_DIR: join(work.path, "data"),
      EXAI_ALLOWED_ROOTS: work.path,
    }),
  );
});

afterAll(async () => {
  await client?.close();
  await fake?.close();
  work?.cleanup();
});

/** Tools called by the check that is running (reset before each check). */
let called = new Set<string>();

async function call(name: string, args: Record<string, unknown>): Promise<Record<string, unknown>> {
  const result = (await client.client.callTool({ name, arguments: args })) as { isError?: boolean };
  const payload = structured(result);
  expect(result.isError, `${name}: ${JSON.stringify(payload).slice(0, 300)}`).toBeFalsy();
  called.add(name);
  return payload;
}

const lastRequestText = () => JSON.stringify(fake.chatRequests().at(-1)?.body ?? {});
const finalStep = (extra: Record<string, unknown> = {}) => ({
  step: "Final step of the end-to-end test",
  step_number: 1,
  total_steps: 1,
  next_step_required: false,
  findings: "E2E-FINDINGS: add() returns the sum",
  relevant_files: [sample],
  ...extra,
});

interface ToolCheck {
  name: string;
  /** The tools this check calls; the check fails unless it called each of them. */
  tools: string[];
  run: () => Promise<void>;
}

const EXPERT_TOOLS = ["thinkdeep", "analyze", "debug", "codereview", "refactor", "secaudit", "testgen"];

const CHECKS: ToolCheck[] = [
  {
    name: "chat answers through the model and offers a continuation",
    tools: ["chat"],
    run: async () => {
      const result = await call("chat", { prompt: "E2E-CHAT what is 2+2?" });
      expect(result.content).toContain("fake reply from");
      expect(result.continuation_id).toMatch(/^[0-9a-f-]{36}$/);
      expect(lastRequestText()).toContain("E2E-CHAT what is 2+2?");
    },
  },
  ...EXPERT_TOOLS.map((tool) => ({
    name: `${tool} sends the findings and the line-numbered file to the expert and returns its analysis`,
    tools: [tool],
    run: async () => {
      const result = await call(tool, finalStep());
      expect(result.status).toBe("calling_expert_analysis");
      expect((result.expert_analysis as Record<string, unknown>).raw_analysis).toContain("fake reply from");
      const sent = lastRequestText();
      expect(sent).toContain("E2E-FINDINGS");
      expect(sent).toContain(`--- BEGIN FILE: ${sample} ---`);
      expect(sent).toMatch(/ {3}1│ def add/);
    },
  })),
  {
    name: "precommit puts the staged change into the expert's request",
    tools: ["precommit"],
    run: async () => {
      const result = await call("precommit", finalStep({ path: repo, relevant_files: undefined }));
      expect(result.status).toBe("calling_expert_analysis");
      expect(lastRequestText()).toContain("STAGED-CHANGE");
    },
  },
  {
    name: "planner, docgen and tracer complete without a model",
    tools: ["planner", "docgen", "tracer"],
    run: async () => {
      const before = fake.chatRequests().length;
      const plan = await call("planner", {
        step: "Ship the feature",
        step_number: 1,
        total_steps: 1,
        next_step_required: false,
      });
      expect(plan.status).toBe("planning_complete");
      expect((plan.plan as { steps: unknown[] }).steps).toHaveLength(1);
      const docs = await call("docgen", finalStep({ num_files_documented: 1, total_files_to_document: 1 }));
      expect(docs.status).toBe("docgen_complete");
      const trace = await call("tracer", finalStep({ trace_mode: "precision", target_description: "add()" }));
      expect(trace.status).toBe("tracing_complete");
      expect(fake.chatRequests().length).toBe(before);
    },
  },
  {
    name: "consensus returns one verdict per model, each with its stance",
    tools: ["consensus"],
    run: async () => {
      const result = await call("consensus", {
        prompt: "Adopt the change?",
        models: [
          { model: "glm-4.5-flash", stance: "for" },
          { model: "kimi-k2.6", stance: "against" },
        ],
      });
      expect(result.status).toBe("consensus_complete");
      const verdicts = result.verdicts as Array<{ model: string; stance: string; status: string }>;
      expect(verdicts.map((verdict) => [verdict.model, verdict.stance, verdict.status])).toEqual([
        ["glm-4.5-flash", "for", "success"],
        ["kimi-k2.6", "against", "success"],
      ]);
    },
  },
  {
    name: "challenge wraps the statement for critical review",
    tools: ["challenge"],
    run: async () => {
      const result = await call("challenge", { prompt: "Retries always help" });
      expect(result.challenge_prompt).toContain("Retries always help");
    },
  },
  {
    name: "listmodels, version, provider_capabilities, status and health describe the server",
    tools: ["listmodels", "version", "provider_capabilities", "status", "health"],
    run: async () => {
      const models = await call("listmodels", {});
      const ids = (models.models as Array<{ id: string }>).map((model) => model.id);
      expect(ids).toEqual(expect.arrayContaining(["glm-4.5-flash", "kimi-k2.6"]));
      const version = await call("version", {});
      expect(version.version).toMatch(/^\d+\.\d+\.\d+/);
      expect(version.tool_profile).toBe("full");
      const capabilities = await call("provider_capabilities", {});
      expect(JSON.stringify(capabilities)).not.toContain("test-glm-key");
      expect(JSON.stringify(capabilities)).toContain('"key_present":true');
      const status = await call("status", {});
      expect((status.admission as { global: { cap: number } }).global.cap).toBe(16);
      const health = await call("health", {});
      const providers = health.providers as Array<{ provider: string; status: string }>;
      expect(providers.find((entry) => entry.provider === "glm")?.status).toBe("reachable");
    },
  },
  {
    name: "activity and toolcall_log_tail read the calls made before them",
    tools: ["activity", "toolcall_log_tail"],
    run: async () => {
      // Calls of this check itself, so the check holds whatever ran before it.
      await call("challenge", { prompt: "E2E-ACTIVITY one" });
      await call("challenge", { prompt: "E2E-ACTIVITY two" });
      // The tool-call log is written through a buffered stream: poll until both lines are in.
      let activity: Record<string, unknown> = {};
      for (let attempt = 0; attempt < 40; attempt++) {
        activity = await call("activity", {});
        const challenge = (activity.tools as Record<string, { calls?: number }>).challenge;
        if ((challenge?.calls ?? 0) >= 2) break;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      expect((activity.tools as Record<string, { calls: number }>).challenge?.calls).toBeGreaterThanOrEqual(
        2,
      );
      expect(activity.total_calls as number).toBeGreaterThanOrEqual(2);
      const tail = await call("toolcall_log_tail", { lines: 3 });
      const entries = tail.entries as Array<{ tool?: string }>;
      expect(entries).toHaveLength(3);
      expect(entries.some((entry) => entry.tool === "challenge")).toBe(true);
    },
  },
  {
    name: "the Kimi file tools upload once and answer with the file's content",
    tools: ["kimi_upload_and_extract", "kimi_multi_file_chat", "smart_file_query", "kimi_manage_files"],
    run: async () => {
      const uploadsBefore = fake.requests.filter(
        (request) => request.method === "POST" && request.path === "/files",
      ).length;
      const extracted = await call("kimi_upload_and_extract", { files: [sample] });
      const files = extracted.files as Array<{ system_message: { content: string }; file_id: string }>;
      expect(files[0]?.system_message.content).toContain("def add");
      const multi = await call("kimi_multi_file_chat", {
        prompt: "E2E-MULTI what is defined?",
        files: [sample],
      });
      expect(multi.content).toContain("fake reply from kimi");
      expect(lastRequestText()).toContain("def add");
      const query = await call("smart_file_query", { file: sample, question: "E2E-QUERY what does it do?" });
      expect((query.file as { reused_upload: boolean }).reused_upload).toBe(true);
      const uploads = fake.requests.filter(
        (request) => request.method === "POST" && request.path === "/files",
      );
      expect(uploads.length - uploadsBefore).toBeLessThanOrEqual(1);
      const listed = await call("kimi_manage_files", { action: "list" });
      expect((listed.files as Array<{ file_id: string }>).map((file) => file.file_id)).toContain(
        files[0]?.file_id,
      );
    },
  },
  {
    name: "kimi_intent_analysis, kimi_capture_headers and kimi_chat_with_tools talk to Kimi",
    tools: ["kimi_intent_analysis", "kimi_capture_headers", "kimi_chat_with_tools"],
    run: async () => {
      fake.enqueue({
        match: { bodyIncludes: "suggested_tool" },
        reply: {
          content: JSON.stringify({
            intent: "code review",
            needs_websearch: false,
            complexity: "medium",
            suggested_tool: "codereview",
            suggested_model: "kimi-k2.6",
          }),
        },
      });
      const intent = await call("kimi_intent_analysis", { prompt: "Please review my pull request" });
      expect((intent.analysis as { suggested_tool: string }).suggested_tool).toBe("codereview");
      const headers = await call("kimi_capture_headers", { prompt: "ping" });
      expect(JSON.stringify(headers.headers)).toContain("text/event-stream");
      const tools = await call("kimi_chat_with_tools", {
        prompt: "What is new in MCP?",
        use_websearch: true,
      });
      expect(tools.content).toContain("after web search");
      expect(tools.web_search_rounds).toBe(1);
    },
  },
  {
    name: "the GLM tools upload, search and preview",
    tools: ["glm_upload_file", "glm_web_search", "glm_payload_preview"],
    run: async () => {
      const upload = await call("glm_upload_file", { file: sample });
      expect(upload.file_id).toMatch(/^file-/);
      const search = await call("glm_web_search", { query: "model context protocol" });
      expect((search.results as unknown[]).length).toBeGreaterThan(0);
      expect(fake.requests.some((request) => request.path === "/web_search")).toBe(true);
      const preview = await call("glm_payload_preview", { prompt: "hi", use_websearch: true });
      const body = preview.body as { model: string; tools?: Array<{ type: string }> };
      expect(body.model).toMatch(/^glm-/);
      expect(body.tools?.some((tool) => tool.type === "web_search")).toBe(true);
    },
  },
];

describe("every tool of the full profile over MCP stdio", () => {
  it("lists 31 tools, and the checks below cover every one of them", async () => {
    const { tools } = await client.client.listTools();
    expect(tools).toHaveLength(31);
    const covered = [...new Set(CHECKS.flatMap((check) => check.tools))].sort();
    expect(covered).toEqual(tools.map((tool) => tool.name).sort());
  });

  it.each(CHECKS.map((check) => [check.name, check] as const))("%s", async (_name, check) => {
    called = new Set();
    await check.run();
    expect([...called].filter((tool) => check.tools.includes(tool)).sort()).toEqual([...check.tools].sort());
  });
});
