/**
 * One real `exai daemon` process takes the hostile inputs of the trust-boundary review one after
 * another — a 1.5 GB image, `/proc/self/environ` as an image, a `.gitignore` that is `/dev/zero`,
 * a FIFO named `.gitignore`, arguments nested 100,000 levels deep, a provider that streams without
 * end, a provider that echoes the API key — and answers each with a clear error (or a safe
 * result), while its resident memory stays under 200 MB throughout (sampled every 20 ms during
 * each call; every test asserts the peak of its own call, so none depends on another's order).
 */
import { execFileSync } from "node:child_process";
import {
  mkdirSync,
  openSync,
  closeSync,
  ftruncateSync,
  readFileSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { startFakeProvider, type FakeProvider } from "../src/testing/fake-provider.js";
import { freePort, runCleanups, startDaemon, type Cleanup } from "./support/daemon.js";
import { fastEnv, providerEnv, tempDir } from "./support/harness.js";

const GLM_KEY = "glm-secret-key-for-the-rss-test-0123456789";
const RSS_LIMIT_MIB = 200;

const cleanups: Cleanup[] = [];
let fake: FakeProvider;
let work: string;
let socket: WebSocket;
let daemonPid = 0;
let nextId = 0;

/** Resident set size of process `pid`, MiB (Linux /proc). */
function rssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return Number(/VmRSS:\s+(\d+)\s+kB/.exec(status)?.[1] ?? 0) / 1024;
}

interface CallResult {
  outputs?: Array<{ type: string; text?: string }>;
  error?: { code: string; message: string };
}

/**
 * Sends one raw call_tool frame over the daemon's socket and waits for its answer, sampling the
 * daemon's RSS every 20 ms meanwhile. Returns the answer and the peak RSS, MiB.
 */
async function sendCall(requestId: string, frame: string): Promise<{ result: CallResult; peakMiB: number }> {
  let peakMiB = rssMiB(daemonPid);
  const sampler = setInterval(() => {
    peakMiB = Math.max(peakMiB, rssMiB(daemonPid));
  }, 20);
  try {
    const result = await new Promise<CallResult>((resolve) => {
      const onMessage = (data: WebSocket.RawData) => {
        const frame = JSON.parse(data.toString()) as { op: string; request_id?: string } & CallResult;
        if (frame.request_id !== requestId) return;
        if (frame.op === "call_tool_res") {
          socket.off("message", onMessage);
          resolve(frame);
        } else if (frame.op === "error") {
          // A refused frame answers with {op:"error", code, message}: the test reads it like a result.
          socket.off("message", onMessage);
          resolve({ error: frame as unknown as { code: string; message: string } });
        }
      };
      socket.on("message", onMessage);
      socket.send(frame);
    });
    return { result, peakMiB: Math.max(peakMiB, rssMiB(daemonPid)) };
  } finally {
    clearInterval(sampler);
  }
}

/** One tool call; also checks the daemon stayed under the RSS limit while it ran. */
async function callTool(name: string, args: unknown): Promise<CallResult> {
  const requestId = `rss-${++nextId}`;
  const { result, peakMiB } = await sendCall(
    requestId,
    JSON.stringify({ op: "call_tool", request_id: requestId, name, arguments: args, roots: [work] }),
  );
  expect(peakMiB, `daemon RSS during ${name}`).toBeLessThan(RSS_LIMIT_MIB);
  return result;
}

const text = (result: CallResult) => JSON.stringify(result);

beforeAll(async () => {
  fake = await startFakeProvider();
  const data = tempDir("exai-rss-data-");
  const dir = tempDir("exai-rss-work-");
  work = dir.path;
  cleanups.push(async () => {
    await fake.close();
    data.cleanup();
    dir.cleanup();
  });
  const port = await freePort();
  const env = fastEnv({
    ...providerEnv(fake),
    GLM_API_KEY: GLM_KEY,
    EXAI_DATA_DIR: data.path,
    EXAI_WS_HOST: "127.0.0.1",
    EXAI_WS_PORT: String(port),
    SIMPLE_TOOL_TIMEOUT_SECS: "8",
    WORKFLOW_TOOL_TIMEOUT_SECS: "10",
  });
  const daemon = await startDaemon(env, `http://127.0.0.1:${port}`, cleanups);
  daemonPid = daemon.child.pid ?? 0;
  socket = new WebSocket(`ws+unix://${join(data.path, "daemon.sock")}:/`, { perMessageDeflate: false });
  cleanups.push(() => socket.terminate());
  await new Promise<void>((resolve, reject) => {
    socket.once("open", () => resolve());
    socket.once("error", reject);
  });
  const acked = new Promise<void>((resolve) => socket.once("message", () => resolve()));
  socket.send(JSON.stringify({ op: "hello", client: { name: "rss-test", version: "1" } }));
  await acked;
}, 30_000);

afterAll(() => runCleanups(cleanups));

describe("one daemon under every hostile input of the review", () => {
  it("a 1.5 GB image is refused before it is read", async () => {
    const image = join(work, "huge.png");
    const fd = openSync(image, "w");
    writeFileSync(fd, Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
    ftruncateSync(fd, 1.5 * 1024 ** 3); // sparse: no disk used
    closeSync(fd);
    const result = await callTool("chat", { prompt: "describe", images: [image], model: "glm-4.5v" });
    expect(result.error?.code).toBe("INVALID_ARGUMENT");
    expect(result.error?.message).toContain("EXAI_MAX_IMAGE_MB");
  });

  it("/proc/self/environ as an image sends nothing to the provider", async () => {
    const before = fake.chatRequests().length;
    const result = await callTool("chat", { prompt: "describe", images: ["/proc/self/environ"] });
    expect(result.error?.code).toMatch(/FILE_ACCESS_DENIED|INVALID_ARGUMENT/);
    expect(fake.chatRequests().length).toBe(before);
  });

  it("a .gitignore that is /dev/zero or a FIFO costs nothing and blocks nothing", async () => {
    const project = join(work, "project");
    mkdirSync(join(project, "nested", "deeper"), { recursive: true });
    writeFileSync(join(project, "main.py"), "print('hi')\n");
    symlinkSync("/dev/zero", join(project, "nested", ".gitignore"));
    execFileSync("mkfifo", [join(project, "nested", "deeper", ".gitignore")]);
    const result = await callTool("chat", { prompt: "summarise", files: [project] });
    expect(result.error).toBeUndefined();
    expect(text(result)).toContain("fake reply from");
  });

  it("arguments nested 100,000 levels deep are INVALID_ARGUMENT naming the limit", async () => {
    const deep = "[".repeat(100_000) + "]".repeat(100_000);
    const frame = `{"op":"call_tool","request_id":"rss-deep","name":"chat","arguments":{"prompt":"x","extra":${deep}},"roots":[${JSON.stringify(work)}]}`;
    const { result, peakMiB } = await sendCall("rss-deep", frame);
    expect(peakMiB).toBeLessThan(RSS_LIMIT_MIB);
    expect(text(result)).toContain("EXAI_MAX_ARGUMENT_DEPTH");
  });

  it("a provider that streams without end is cut at the cap, once", async () => {
    const before = fake.chatRequests().length;
    fake.enqueue({ fault: { kind: "endless" }, times: Infinity });
    try {
      const result = await callTool("chat", { prompt: "talk forever", model: "glm-4.5" });
      expect(result.error?.code).toBe("PROVIDER_ERROR");
      expect(result.error?.message).toContain("EXAI_MAX_STREAM_CHARS");
      expect(fake.chatRequests().length - before).toBe(1);
    } finally {
      fake.reset();
    }
  }, 20_000);

  it("a provider that echoes the API key has it redacted from the result", async () => {
    fake.enqueue({
      fault: { kind: "status", status: 401, body: { error: { message: `Invalid API key: ${GLM_KEY}` } } },
    });
    const result = await callTool("chat", { prompt: "hello", model: "glm-4.5" });
    expect(result.error?.code).toBe("PROVIDER_ERROR");
    expect(text(result)).not.toContain(GLM_KEY);
    expect(text(result)).toContain("[redacted]");
  });
});
