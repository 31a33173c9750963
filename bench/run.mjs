// `npm run bench`: measures exai against a direct provider call and a peer gateway, all in one run,
// and writes bench/RESULTS.md. Every server runs on loopback; nothing leaves the machine.
//
//   node bench/run.mjs [--quick] [--only <sections>]
//     --quick: fewer iterations, for a smoke check of the script
//     --only overhead,scaling,timeouts,memory,startup,tokens: run just these sections and print
//       them (bench/RESULTS.md is rewritten only by a run of every section)
import { spawn } from "node:child_process";
import { existsSync, renameSync, writeFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { join } from "node:path";
import OpenAI from "openai";
import { Agent, fetch as undiciFetch } from "undici";
import WebSocket from "ws";
import { loadConfig } from "../dist/config/load.js";
import { createLogger } from "../dist/base/logging.js";
import { getTokenCounter } from "../dist/memory/tokenizer.js";
import { createRuntime } from "../dist/runtime/runtime.js";
import { startFakeProvider } from "../dist/testing/fake-provider.js";
import {
  benchEnv,
  CLI,
  closedLoop,
  dataDir,
  freePort,
  mcpClient,
  ms,
  quantile,
  ROOT,
  rssMb,
  startProcess,
  waitForPort,
} from "./lib.mjs";

const quick = process.argv.includes("--quick");
const SECTIONS = ["overhead", "scaling", "timeouts", "memory", "startup", "tokens"];
const onlyIndex = process.argv.indexOf("--only");
const only = onlyIndex === -1 ? SECTIONS : (process.argv[onlyIndex + 1] ?? "").split(",").filter(Boolean);
const unknown = only.filter((name) => !SECTIONS.includes(name));
if (unknown.length > 0 || only.length === 0) {
  process.stderr.write(
    `--only: unknown section(s) ${unknown.join(", ") || "(none given)"}; use ${SECTIONS.join(",")}\n`,
  );
  process.exit(2);
}
const partial = only.length < SECTIONS.length;
const N = (full, small) => (quick ? small : full);
const log = (text) => process.stderr.write(`${text}\n`);
const sections = [];
const notes = [];
/** Figures the targets table compares (filled by the sections). */
const measured = {};

const messages = (index) => [{ role: "user", content: `bench question ${index}` }];

/** Latency of one streamed chat completion through an OpenAI-compatible client. */
async function streamOnce(client, index) {
  const stream = await client.chat.completions.create({
    model: "glm-4.5-flash",
    messages: messages(index),
    stream: true,
  });
  for await (const chunk of stream) void chunk;
}

/** Latency of one non-streamed chat completion (for the Portkey comparison, see the note in the results). */
async function completeOnce(client, index) {
  await client.chat.completions.create({ model: "glm-4.5-flash", messages: messages(index) });
}

function latencyRow(label, result, direct) {
  const p50 = quantile(result.latencies, 0.5);
  const p99 = quantile(result.latencies, 0.99);
  const over50 = direct ? p50 - quantile(direct.latencies, 0.5) : NaN;
  const over99 = direct ? p99 - quantile(direct.latencies, 0.99) : NaN;
  const rps = (result.latencies.length / result.wallMs) * 1000;
  return `| ${label} | ${ms(p50)} | ${ms(p99)} | ${direct ? ms(over50) : "—"} | ${direct ? ms(over99) : "—"} | ${rps.toFixed(0)} |`;
}

async function overhead(fake) {
  log("overhead: direct, in-process, shim + daemon, Portkey …");
  // The direct client gets the same kind of keep-alive pool exai's provider layer uses (undici Agent).
  const pool = new Agent({ connections: 200 });
  const direct = new OpenAI({
    apiKey: "bench",
    baseURL: fake.url,
    maxRetries: 0,
    fetch: (url, init) => undiciFetch(url, { ...init, dispatcher: pool }),
  });
  const data = dataDir();
  const env = benchEnv({
    GLM_API_KEY: "bench",
    GLM_API_URL: fake.url,
    EXAI_DATA_DIR: data.path,
    GLM_MAX_CONNECTIONS: "200",
  });
  const inProcess = await mcpClient(["stdio"], env);
  const viaStdio = (index) =>
    inProcess.callTool({
      name: "chat",
      arguments: { prompt: `bench question ${index}`, model: "glm-4.5-flash" },
    });

  let daemonCall;
  let daemon;
  let shim;
  const daemonData = dataDir();
  if (existsSync(join(ROOT, "dist", "daemon", "server.js"))) {
    const port = await freePort();
    const daemonEnv = benchEnv({ ...env, EXAI_DATA_DIR: daemonData.path, EXAI_WS_PORT: String(port) });
    daemon = startProcess(process.execPath, [CLI, "daemon", "--port", String(port)], daemonEnv);
    await waitForPort(port);
    shim = await mcpClient(["shim"], daemonEnv);
    daemonCall = (index) =>
      shim.callTool({
        name: "chat",
        arguments: { prompt: `bench question d${index}`, model: "glm-4.5-flash" },
      });
  } else {
    notes.push("The shim + daemon rows are missing: dist/daemon is not built in this checkout.");
  }

  let portkey;
  let portkeyClient;
  const portkeyEntry = join(ROOT, "node_modules", "@portkey-ai", "gateway", "build", "start-server.js");
  if (existsSync(portkeyEntry)) {
    const port = await freePort();
    portkey = startProcess(process.execPath, [portkeyEntry, `--port=${port}`, "--headless"], {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      NODE_ENV: "production",
    });
    await waitForPort(port, 30_000);
    portkeyClient = new OpenAI({
      apiKey: "bench",
      baseURL: `http://127.0.0.1:${port}/v1`,
      maxRetries: 0,
      defaultHeaders: { "x-portkey-provider": "openai", "x-portkey-custom-host": `${fake.url}/v1` },
    });
    notes.push(
      "Portkey gateway 1.15.2 runs on this machine's Node, but every *streamed* request through it fails with HTTP 500 " +
        "(its log: `TypeError: immutable` from `Headers.append` in `updateHeaders`: it adds a header to the upstream fetch " +
        "Response, whose headers are immutable in Node 20's undici). Non-streamed requests work, so its row uses non-streamed " +
        "requests and its overhead is measured against a direct non-streamed call in the same run; exai's rows stream.",
    );
  } else {
    notes.push("Portkey gateway rows are missing: @portkey-ai/gateway is not installed (npm install).");
  }

  const rows = [];
  for (const concurrency of [1, 100]) {
    const total = concurrency === 1 ? N(400, 40) : N(2000, 200);
    const warm = N(100, 10);
    const measure = async (task) => {
      await closedLoop(task, { total: warm, concurrency });
      return closedLoop(task, { total, concurrency });
    };
    // Interleave the runs so a noisy neighbour affects every variant alike.
    const directResult = await measure((index) => streamOnce(direct, index));
    const stdioResult = await measure(viaStdio);
    const daemonResult = daemonCall ? await measure(daemonCall) : undefined;
    // Portkey 1.15.2 cannot stream on Node 20 (see the note), so it is compared on non-streamed calls.
    const directPlain = portkeyClient ? await measure((index) => completeOnce(direct, index)) : undefined;
    const portkeyResult = portkeyClient
      ? await measure((index) => completeOnce(portkeyClient, index))
      : undefined;
    const p = (result, q) => quantile(result.latencies, q);
    const perCallMs = (result) => result.wallMs / result.latencies.length;
    measured[`c${concurrency}`] = {
      inProcessP50: p(stdioResult, 0.5) - p(directResult, 0.5),
      inProcessP99Abs: p(stdioResult, 0.99),
      directP99: p(directResult, 0.99),
      daemonP50: daemonResult ? p(daemonResult, 0.5) - p(directResult, 0.5) : NaN,
      portkeyP50: portkeyResult && directPlain ? p(portkeyResult, 0.5) - p(directPlain, 0.5) : NaN,
      // Under saturation latency is queueing; the cost per call is what separates the variants.
      inProcessCost: perCallMs(stdioResult) - perCallMs(directResult),
      daemonCost: daemonResult ? perCallMs(daemonResult) - perCallMs(directResult) : NaN,
      portkeyCost: portkeyResult && directPlain ? perCallMs(portkeyResult) - perCallMs(directPlain) : NaN,
    };
    rows.push(`| **concurrency ${concurrency}** (${total} requests) | | | | | |`);
    rows.push(latencyRow("direct (openai SDK → fake provider)", directResult));
    rows.push(latencyRow("exai in-process (MCP client → stdio → provider)", stdioResult, directResult));
    if (daemonResult)
      rows.push(
        latencyRow(
          "exai shim + daemon (MCP → shim → WebSocket → daemon → provider)",
          daemonResult,
          directResult,
        ),
      );
    if (portkeyResult && directPlain) {
      rows.push(latencyRow("direct, non-streamed", directPlain));
      rows.push(
        latencyRow(
          "Portkey gateway 1.15.2, non-streamed (openai SDK → gateway → provider)",
          portkeyResult,
          directPlain,
        ),
      );
    }
  }
  sections.push(
    [
      "## Overhead against a direct provider call",
      "",
      "The same streamed chat completion against an instant fake provider on loopback. `chat` through exai also",
      "stores the conversation turn in SQLite and returns a JSON result over MCP. Overhead = the variant's",
      "percentile minus the direct call's percentile in the same run (ms). At concurrency 100 the machine is",
      "saturated (benchmark client, fake provider and server share 2 cores), so latencies are queueing",
      "delays: compare calls/s there — the cost per call is wall time / calls minus the direct call's.",
      "",
      "| path | p50 ms | p99 ms | overhead p50 ms | overhead p99 ms | calls/s |",
      "|---|---|---|---|---|---|",
      ...rows,
    ].join("\n"),
  );
  await inProcess.close();
  await pool.close();
  await shim?.close();
  await daemon?.stop();
  await portkey?.stop();
  data.cleanup();
  daemonData.cleanup();
}

async function parallelScaling(fake) {
  log("parallel scaling …");
  fake.setDefaultDelay(1000);
  const data = dataDir();
  const client = await mcpClient(
    ["stdio"],
    benchEnv({ GLM_API_KEY: "bench", GLM_API_URL: fake.url, EXAI_DATA_DIR: data.path }),
  );
  const rows = [];
  for (const n of [1, 2, 4, 8, 16, 32, 64]) {
    const started = performance.now();
    await Promise.all(
      Array.from({ length: n }, (_, index) =>
        client.callTool({
          name: "chat",
          arguments: { prompt: `parallel ${n} ${index}`, model: "glm-4.5-flash" },
        }),
      ),
    );
    const wall = (performance.now() - started) / 1000;
    if (n === 64) measured.parallel64 = wall;
    rows.push(`| ${n} | ${wall.toFixed(3)} |`);
  }
  fake.setDefaultDelay(0);
  await client.close();
  data.cleanup();
  sections.push(
    [
      "## Parallel scaling",
      "",
      "N concurrent `chat` calls through one in-process server (MCP over stdio); the provider takes 1 s per call;",
      "admission caps raised to allow them all.",
      "",
      "| N | wall time s |",
      "|---|---|",
      ...rows,
    ].join("\n"),
  );
}

async function timeoutPrecision(fake) {
  log("timeout precision …");
  const data = dataDir();
  const config = loadConfig({
    env: {
      GLM_API_KEY: "bench",
      GLM_API_URL: fake.url,
      EXAI_DATA_DIR: data.path,
      SIMPLE_TOOL_TIMEOUT_SECS: "0.25",
      EXAI_WS_PROGRESS_INTERVAL_SECS: "0.1",
      EXPERT_HEARTBEAT_INTERVAL_SECS: "0.1",
      EXAI_WS_GLOBAL_MAX_INFLIGHT: "100",
      EXAI_WS_GLM_MAX_INFLIGHT: "100",
    },
    cwd: ROOT,
    envFile: false,
  });
  const runtime = createRuntime(config, { mode: "stdio", logger: createLogger({ level: "silent" }) });
  fake.enqueue({ fault: { kind: "hang_before_headers" }, times: Infinity });
  const total = N(200, 40);
  const lateness = [];
  await closedLoop(
    async (index) => {
      const started = performance.now();
      const outcome = await runtime.executor.call({
        tool: "chat",
        arguments: { prompt: `timeout ${index}`, model: "glm-4.5-flash" },
      });
      if (outcome.error?.code !== "TIMEOUT")
        throw new Error(`expected TIMEOUT, got ${JSON.stringify(outcome.error ?? outcome.result)}`);
      lateness.push(performance.now() - started - 250);
    },
    { total, concurrency: 10 },
  );
  fake.reset();
  await runtime.close();
  data.cleanup();
  measured.timeoutP99 = quantile(lateness, 0.99);
  sections.push(
    [
      "## Timeout precision",
      "",
      `${total} calls to a provider that never answers, 10 at a time, tool budget 0.25 s; lateness = when the`,
      "caller got TIMEOUT minus the budget (ms).",
      "",
      "| p50 ms | p99 ms | max ms |",
      "|---|---|---|",
      `| ${ms(quantile(lateness, 0.5))} | ${ms(quantile(lateness, 0.99))} | ${ms(Math.max(...lateness))} |`,
    ].join("\n"),
  );
}

const MEMORY_TOKEN = "bench-memory-token-0123456789";

async function daemonMemory(fake) {
  if (!existsSync(join(ROOT, "dist", "daemon", "server.js"))) {
    notes.push("Daemon memory was not measured: dist/daemon is not built in this checkout.");
    return;
  }
  log("daemon memory with 1,000 calls in flight …");
  const inflight = N(1000, 100);
  const data = dataDir();
  const port = await freePort();
  const env = benchEnv({
    GLM_API_KEY: "bench",
    GLM_API_URL: fake.url,
    EXAI_DATA_DIR: data.path,
    EXAI_WS_PORT: String(port),
    GLM_MAX_CONNECTIONS: "2000",
    SIMPLE_TOOL_TIMEOUT_SECS: "30",
    EXAI_WS_PROGRESS_INTERVAL_SECS: "5",
    // The daemon's TCP port needs its token (hello `token`, Authorization on HTTP).
    EXAI_WS_TOKEN: MEMORY_TOKEN,
  });
  const daemon = startProcess(process.execPath, [CLI, "daemon", "--port", String(port)], env);
  await waitForPort(port);
  fake.enqueue({ fault: { kind: "hang_before_headers" }, times: Infinity });
  const idle = await rssMb(daemon.child.pid);
  measured.rssIdle = idle;
  const socket = new WebSocket(`ws://127.0.0.1:${port}/`, {
    headers: { authorization: `Bearer ${MEMORY_TOKEN}` },
  });
  await new Promise((done, reject) => {
    socket.once("open", done);
    socket.once("error", reject);
  });
  let acks = 0;
  const acked = new Promise((done) => {
    socket.on("message", (raw) => {
      const frame = JSON.parse(raw.toString());
      if (frame.op === "call_tool_ack" && ++acks === inflight) done();
    });
  });
  socket.once("close", (code, reason) =>
    log(`daemon memory: the daemon closed the socket (${code} ${reason})`),
  );
  socket.send(JSON.stringify({ op: "hello", token: MEMORY_TOKEN, client: { name: "bench", version: "1" } }));
  for (let index = 0; index < inflight; index++) {
    socket.send(
      JSON.stringify({
        op: "call_tool",
        request_id: `r${index}`,
        name: "chat",
        arguments: { prompt: `held ${index}`, model: "glm-4.5-flash" },
        progress: false,
      }),
    );
  }
  await acked;
  const deadline = performance.now() + 20_000;
  while (fake.chatRequests().length < inflight && performance.now() < deadline)
    await new Promise((done) => setTimeout(done, 100));
  const health = await fetch(`http://127.0.0.1:${port}/health`, {
    headers: { authorization: `Bearer ${MEMORY_TOKEN}` },
  }).then((response) => response.json());
  const loaded = await rssMb(daemon.child.pid);
  measured.rss1000 = inflight === 1000 ? loaded : NaN;
  socket.removeAllListeners("close"); // closed by us from here on
  socket.close();
  await daemon.stop();
  fake.reset();
  data.cleanup();
  sections.push(
    [
      "## Daemon memory",
      "",
      `RSS of \`exai daemon\` idle and with ${inflight.toLocaleString("en-US")} calls in flight (each holding an open`,
      "provider request that never answers); /health reported",
      `${JSON.stringify(health.inflight?.global ?? health.inflight ?? null)} in flight; the fake provider held ${fake.chatRequests().length || "all"} requests.`,
      "",
      "| state | RSS MB |",
      "|---|---|",
      `| idle | ${idle.toFixed(1)} |`,
      `| ${inflight.toLocaleString("en-US")} in flight | ${loaded.toFixed(1)} |`,
    ].join("\n"),
  );
}

/** Milliseconds from spawning `exai stdio` to its answer to `initialize` (sent at once on stdin). */
async function timeToInitialize(env) {
  const started = performance.now();
  const child = spawn(process.execPath, [CLI, "stdio"], { env, stdio: ["pipe", "pipe", "ignore"] });
  child.stdin.write(
    `${JSON.stringify({
      jsonrpc: "2.0",
      id: 1,
      method: "initialize",
      params: {
        protocolVersion: "2025-06-18",
        capabilities: {},
        clientInfo: { name: "bench", version: "1" },
      },
    })}\n`,
  );
  let buffered = "";
  const elapsed = await new Promise((done, reject) => {
    child.once("exit", (code) =>
      reject(new Error(`exai stdio exited (${code}) before answering initialize`)),
    );
    child.stdout.on("data", (chunk) => {
      buffered += chunk.toString();
      if (buffered.includes("\n") && JSON.parse(buffered.split("\n")[0]).id === 1)
        done(performance.now() - started);
    });
  });
  child.removeAllListeners("exit");
  const exited = new Promise((done) => child.once("exit", done));
  child.stdin.end();
  await exited;
  return elapsed;
}

async function startup() {
  log("exai stdio: time to answer initialize …");
  const runs = N(11, 3);
  const data = dataDir();
  const env = benchEnv({
    GLM_API_KEY: "bench",
    GLM_API_URL: "http://127.0.0.1:9/v1",
    EXAI_DATA_DIR: data.path,
  });
  await timeToInitialize(env); // warms the file-system cache, not counted
  const times = [];
  for (let run = 0; run < runs; run++) times.push(await timeToInitialize(env));
  data.cleanup();
  // A bare `node -e 0` in the same run: the floor no exai change can go below.
  const floor = [];
  for (let run = 0; run < runs; run++) {
    const t0 = performance.now();
    await new Promise((done) => spawn(process.execPath, ["-e", "0"], { stdio: "ignore" }).once("exit", done));
    floor.push(performance.now() - t0);
  }
  measured.initializeMs = quantile(times, 0.5);
  sections.push(
    [
      "## Startup",
      "",
      `\`exai stdio\` spawned ${runs} times; each time \`initialize\` is written to its stdin at once and the`,
      "time runs to its answer on stdout (ms). The provider is configured but never contacted. `node -e 0`",
      "is the floor: starting Node itself on this machine in the same run.",
      "",
      "| process | median ms | min ms | max ms |",
      "|---|---|---|---|",
      `| exai stdio → initialize answered | ${ms(quantile(times, 0.5))} | ${ms(Math.min(...times))} | ${ms(Math.max(...times))} |`,
      `| node -e 0 (exit) | ${ms(quantile(floor, 0.5))} | ${ms(Math.min(...floor))} | ${ms(Math.max(...floor))} |`,
    ].join("\n"),
  );
}

async function toolsListTokens() {
  log("tools/list tokens per profile …");
  const counter = getTokenCounter();
  const rows = [];
  for (const profile of ["lean", "standard", "full"]) {
    const data = dataDir();
    const client = await mcpClient(["stdio"], benchEnv({ TOOL_PROFILE: profile, EXAI_DATA_DIR: data.path }));
    const { tools } = await client.listTools();
    const text = JSON.stringify(tools);
    rows.push(
      `| ${profile} | ${tools.length} | ${text.length.toLocaleString("en-US")} | ${counter.count(text).toLocaleString("en-US")} |`,
    );
    await client.close();
    data.cleanup();
  }
  sections.push(
    [
      "## `tools/list` size per profile",
      "",
      "The JSON of the tools array as a client receives it; tokens counted with the cl100k_base tokenizer (the one exai budgets with).",
      "",
      "| profile | tools | characters | tokens |",
      "|---|---|---|---|",
      ...rows,
    ].join("\n"),
  );
}

/** The issue's targets against this run's figures: met or missed, and by how much. */
function targetsSection() {
  const c1 = measured.c1 ?? {};
  const c100 = measured.c100 ?? {};
  const row = (target, value, limit, unit) => {
    if (!Number.isFinite(value)) return `| ${target} | not measured | — |`;
    const verdict = value <= limit ? "met" : `missed by ${(value - limit).toFixed(2)} ${unit}`;
    return `| ${target} | ${value.toFixed(2)} ${unit} | ${verdict} |`;
  };
  return [
    "## Targets",
    "",
    "| target | this run | verdict |",
    "|---|---|---|",
    row("in-process overhead p50 ≤ 1 ms (concurrency 1)", c1.inProcessP50, 1, "ms"),
    // At 100 concurrent every variant is CPU-bound on a 2-core machine (client, fake provider and
    // server share the cores): percentiles measure queueing, so the p99 difference is not a cost.
    `| in-process overhead p99 ≤ 5 ms at 100 concurrent | exai p99 ${ms(c100.inProcessP99Abs)} ms vs direct p99 ${ms(c100.directP99)} ms | not comparable: saturated (see the overhead table) |`,
    row(
      "in-process cost per call ≤ 5 ms at 100 concurrent (wall/calls minus direct)",
      c100.inProcessCost,
      5,
      "ms",
    ),
    row("shim + daemon overhead p50 ≤ 2 ms (concurrency 1)", c1.daemonP50, 2, "ms"),
    row("64 parallel 1 s calls ≤ 1.2 s wall", measured.parallel64, 1.2, "s"),
    row("timeout precision p99 ≤ 50 ms", measured.timeoutP99, 50, "ms"),
    row("daemon ≤ 90 MB RSS idle", measured.rssIdle, 90, "MB"),
    row("daemon ≤ 150 MB RSS at 1,000 in flight", measured.rss1000, 150, "MB"),
    row("exai stdio answers initialize ≤ 300 ms after spawn (median)", measured.initializeMs, 300, "ms"),
    row(
      "overhead p50 below the peer's (exai in-process minus Portkey, concurrency 1)",
      c1.inProcessP50 - c1.portkeyP50,
      0,
      "ms",
    ),
    row(
      "cost per call below the peer's (exai in-process minus Portkey, 100 concurrent)",
      c100.inProcessCost - c100.portkeyCost,
      0,
      "ms",
    ),
  ].join("\n");
}

const fake = await startFakeProvider();
const started = new Date();
try {
  if (only.includes("overhead")) await overhead(fake);
  if (only.includes("scaling")) await parallelScaling(fake);
  if (only.includes("timeouts")) await timeoutPrecision(fake);
  if (only.includes("memory")) await daemonMemory(fake);
  if (only.includes("startup")) await startup();
  if (only.includes("tokens")) await toolsListTokens();
} finally {
  await fake.close();
}

const cpu = cpus()[0]?.model ?? "unknown CPU";
const header = [
  "# Benchmark results",
  "",
  `- date: ${started.toISOString()}`,
  `- machine: ${cpus().length} × ${cpu}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, ${process.platform} ${process.arch}, Node ${process.version}`,
  `- command: \`npm run bench\`${quick ? " (--quick: reduced iterations)" : ""}${partial ? ` (--only ${only.join(",")})` : ""}`,
  "- every figure comes from this one run; the machine is shared, so compare rows within a table, not across runs.",
].join("\n");
const body = [
  header,
  targetsSection(),
  ...sections,
  ...(notes.length ? [`## Notes\n\n${notes.map((note) => `- ${note}`).join("\n")}`] : []),
].join("\n\n");
if (partial) {
  // A subset would drop the other sections' rows from the file: print it instead.
  process.stdout.write(`${body}\n`);
} else {
  const target = join(ROOT, "bench", "RESULTS.md");
  writeFileSync(`${target}.tmp`, `${body}\n`);
  renameSync(`${target}.tmp`, target);
  log(`wrote ${target}`);
}
process.exit(0);
