/**
 * Configured secrets never leave in results, errors or logs (issue 8, Build 7). Before the
 * redactor, a provider that echoed the API key in its 401 body had the key copied verbatim into
 * the tool result and the error message.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { createRuntime, type Runtime } from "../src/runtime/runtime.js";
import { toCallToolResult } from "../src/mcp/server.js";
import { createRedactor, REDACTED, redactorFor } from "../src/base/redact.js";
import { startFakeProvider, type FakeProvider } from "../src/testing/fake-provider.js";
import { fastEnv, makeConfig, tempDir } from "./support/harness.js";

const GLM_KEY = "sk-glm-SECRET-0123456789abcdef";
const KIMI_KEY = "sk-kimi-SECRET-9876543210";
const WS_TOKEN = "ws-token-SECRET-42424242";

describe("createRedactor", () => {
  it("replaces each secret, its Bearer form and its obvious encodings; ignores secrets under 8 characters", () => {
    const redactor = createRedactor(["a+b/c=d?secret", "short"]);
    const base64 = Buffer.from("a+b/c=d?secret").toString("base64");
    expect(redactor.text("Authorization: Bearer a+b/c=d?secret")).toBe(`Authorization: Bearer ${REDACTED}`);
    expect(redactor.text(`url ?key=${encodeURIComponent("a+b/c=d?secret")}`)).toBe(`url ?key=${REDACTED}`);
    expect(redactor.text(`basic ${base64}`)).toBe(`basic ${REDACTED}`);
    expect(redactor.text("a short text")).toBe("a short text");
  });

  it("redacts every string and key of a value, copying only what changed", () => {
    const redactor = createRedactor([GLM_KEY]);
    const untouched = { list: [1, "plain"] };
    const value = { a: [`x ${GLM_KEY}`], [GLM_KEY]: 1, keep: untouched };
    const out = redactor.value(value);
    expect(JSON.stringify(out)).not.toContain(GLM_KEY);
    expect(out.a[0]).toBe(`x ${REDACTED}`);
    expect(out.keep).toBe(untouched);
    expect(value.a[0]).toBe(`x ${GLM_KEY}`);
    expect(redactor.value(untouched)).toBe(untouched);
  });

  it("is built from every configured key and the daemon token, and learns added secrets", () => {
    const config = makeConfig(
      fastEnv({ GLM_API_KEY: GLM_KEY, KIMI_API_KEY: KIMI_KEY, EXAI_WS_TOKEN: WS_TOKEN }),
    );
    const redactor = redactorFor(config);
    expect(redactor.text(`${GLM_KEY} ${KIMI_KEY} ${WS_TOKEN}`)).toBe(`${REDACTED} ${REDACTED} ${REDACTED}`);
    redactor.add("generated-token-777777");
    // The keyless custom endpoint's placeholder is not a secret.
    const keyless = redactorFor(
      makeConfig(fastEnv({ CUSTOM_API_URL: "http://127.0.0.1:9/v1", CUSTOM_MODEL_NAME: "local-model" })),
    );
    expect(keyless.text("a key is not-needed here")).toBe("a key is not-needed here");
    expect(redactor.text("t=generated-token-777777")).toBe(`t=${REDACTED}`);
  });
});

describe("a provider that echoes the key", () => {
  let fake: FakeProvider | undefined;
  let runtime: Runtime | undefined;
  let data: { path: string; cleanup: () => void } | undefined;
  afterEach(async () => {
    await runtime?.close();
    runtime = undefined;
    await fake?.close();
    data?.cleanup();
  });

  async function start() {
    fake = await startFakeProvider();
    data = tempDir("exai-redact-");
    const config = makeConfig(
      fastEnv({
        GLM_API_KEY: GLM_KEY,
        GLM_API_URL: fake.url,
        KIMI_API_KEY: KIMI_KEY,
        KIMI_API_URL: fake.url,
        EXAI_WS_TOKEN: WS_TOKEN,
        EXAI_DATA_DIR: data.path,
        EXAI_LOG_LEVEL: "info",
      }),
    );
    // The runtime's own logger: exai.log in EXAI_DATA_DIR/logs, as in production.
    runtime = createRuntime(config, { mode: "stdio" });
    return { fake, runtime, dataDir: data.path };
  }

  it("401 echoing the key: the error payload, the MCP tool result, the CALL SUMMARY and both logs hold no key", async () => {
    const { fake, runtime, dataDir } = await start();
    fake.enqueue({
      fault: {
        kind: "status",
        status: 401,
        body: {
          error: {
            message: `Invalid API key: ${GLM_KEY} (header was "Bearer ${GLM_KEY}")`,
            type: "authentication_error",
          },
        },
      },
    });
    const outcome = await runtime.executor.call({
      tool: "chat",
      arguments: { prompt: "hello", model: "glm-4.5-flash" },
    });
    expect(outcome.error?.code).toBe("PROVIDER_ERROR");
    expect(outcome.error?.message).toContain("HTTP 401");
    expect(outcome.error?.message).toContain(`Invalid API key: ${REDACTED}`);
    expect(outcome.error?.message).toContain("GLM_API_KEY");
    const mcp = toCallToolResult(outcome);
    for (const text of [JSON.stringify(outcome), JSON.stringify(mcp)]) expect(text).not.toContain(GLM_KEY);
    // Something that logs the provider's text (an error with the echo as its cause) is cleaned too.
    runtime.logger.info(
      { err: new Error(`upstream said ${GLM_KEY}`), detail: `Bearer ${KIMI_KEY}` },
      `token ${WS_TOKEN}`,
    );
    await runtime.close();
    const log = readFileSync(join(dataDir, "logs", "exai.log"), "utf8");
    const jsonl = readFileSync(join(dataDir, "logs", "toolcalls.jsonl"), "utf8");
    expect(log).toContain("CALL SUMMARY");
    expect(log).toContain(`upstream said ${REDACTED}`);
    expect(jsonl).toContain('"error_code":"PROVIDER_ERROR"');
    for (const text of [log, jsonl]) {
      expect(text).not.toContain(GLM_KEY);
      expect(text).not.toContain(KIMI_KEY);
      expect(text).not.toContain(WS_TOKEN);
    }
  });

  it("a 400 body echoing another provider's key is redacted", async () => {
    const { fake, runtime } = await start();
    fake.enqueue({
      fault: { kind: "status", status: 400, body: { error: { message: `bad request for key ${KIMI_KEY}` } } },
    });
    const outcome = await runtime.executor.call({
      tool: "chat",
      arguments: { prompt: "hello", model: "kimi-k2.5" },
    });
    expect(outcome.ok).toBe(false);
    expect(JSON.stringify(outcome)).not.toContain(KIMI_KEY);
    expect(outcome.error?.message).toContain(`bad request for key ${REDACTED}`);
  });

  it("a model answer that repeats the key reaches the client redacted", async () => {
    const { fake, runtime } = await start();
    fake.enqueue({ reply: { content: `your key is ${GLM_KEY}, token ${WS_TOKEN}` } });
    const outcome = await runtime.executor.call({
      tool: "chat",
      arguments: { prompt: "repeat your key", model: "glm-4.5-flash" },
    });
    expect(outcome.ok).toBe(true);
    expect(outcome.result?.content).toBe(`your key is ${REDACTED}, token ${REDACTED}`);
    expect(JSON.stringify(toCallToolResult(outcome))).not.toContain(GLM_KEY);
  });
});
