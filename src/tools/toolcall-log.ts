/**
 * The tools that read the JSONL tool-call log (one CALL SUMMARY per finished call, appended by the
 * executor, SPEC §6.6):
 * - toolcall_log_tail — the last N entries, optionally of one tool (without session ids).
 * - activity — recent calls summarised: counts by tool and outcome, p50 / p95 duration, last N.
 * Only the last LOG_WINDOW_BYTES of the file are read, whatever its size; a missing file (no call
 * finished yet) is an empty log, not an error.
 */
import { open } from "node:fs/promises";
import { z } from "zod";
import { defineTool } from "./framework.js";

/** How much of the end of the log is read, bytes (≈ 3,000 entries). */
const LOG_WINDOW_BYTES = 1024 * 1024;
const MAX_TAIL_LINES = 500;

interface LogTail {
  /** Parsed entries, oldest first. */
  entries: Array<Record<string, unknown>>;
  /** True when the file is longer than the window (older entries were not read). */
  truncated: boolean;
  /** True when the file does not exist yet. */
  missing: boolean;
  /** Lines that were not JSON objects (e.g. a line still being written). */
  skipped: number;
}

/**
 * Reads the last `windowBytes` of a JSONL file and parses its complete lines.
 * @throws the file system's error for anything but a missing file.
 */
async function readLogTail(path: string, windowBytes = LOG_WINDOW_BYTES): Promise<LogTail> {
  let handle;
  try {
    handle = await open(path, "r");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT")
      return { entries: [], truncated: false, missing: true, skipped: 0 };
    throw error;
  }
  try {
    const { size } = await handle.stat();
    const start = Math.max(0, size - windowBytes);
    const buffer = Buffer.alloc(size - start);
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, start);
    const lines = buffer.subarray(0, bytesRead).toString("utf8").split("\n");
    // Reading from the middle of the file: the first line is a fragment.
    if (start > 0) lines.shift();
    const entries: Array<Record<string, unknown>> = [];
    let skipped = 0;
    for (const line of lines) {
      if (line.trim() === "") continue;
      try {
        const parsed: unknown = JSON.parse(line);
        if (parsed !== null && typeof parsed === "object" && !Array.isArray(parsed))
          entries.push(parsed as Record<string, unknown>);
        else skipped++;
      } catch {
        // A line cut by a concurrent append or a crash: counted, not fatal.
        skipped++;
      }
    }
    return { entries, truncated: start > 0, missing: false, skipped };
  } finally {
    await handle.close();
  }
}

const toolFilterField = z.string().optional().describe("Only this tool");

function byTool(entries: Array<Record<string, unknown>>, tool: string | undefined) {
  if (tool === undefined) return entries;
  // Accept the client-side suffixes, like the executor does.
  const wanted = tool
    .trim()
    .replace(/[-_]EXAI-WS$/i, "")
    .toLowerCase();
  return entries.filter((entry) => String(entry.tool ?? "").toLowerCase() === wanted);
}

export const toolcallLogTailTool = defineTool({
  name: "toolcall_log_tail",
  kind: "utility",
  description: `Last N (≤${MAX_TAIL_LINES}) entries of the JSONL tool-call log (call summaries).`,
  annotations: { title: "Tool-call log tail", readOnlyHint: true },
  schema: z.object({
    lines: z.number().int().min(1).max(MAX_TAIL_LINES).optional().describe("Default 50"),
    tool: toolFilterField,
  }),
  async run(args, context) {
    const tail = await readLogTail(context.services.toolCallLogPath);
    const entries = byTool(tail.entries, args.tool)
      .slice(-(args.lines ?? 50))
      .map(withoutSession);
    return {
      status: "success",
      count: entries.length,
      entries,
      log_file: context.services.toolCallLogPath,
      ...(tail.missing ? { note: "no tool call has finished yet: the log file does not exist" } : {}),
      ...(tail.truncated ? { window_bytes: LOG_WINDOW_BYTES } : {}),
      ...(tail.skipped > 0 ? { skipped_lines: tail.skipped } : {}),
    };
  },
});

/**
 * An entry without its `session`: session ids resume and cancel sessions, so no client may read
 * another's (the log file itself stays in the 0700 EXAI_DATA_DIR).
 */
function withoutSession(entry: Record<string, unknown>): Record<string, unknown> {
  if (!("session" in entry)) return entry;
  const { session: _session, ...rest } = entry;
  return rest;
}

/** Nearest-rank percentile of sorted values (p in 0–100); 0 for none. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(sorted.length, rank) - 1] ?? 0;
}

function durations(entries: Array<Record<string, unknown>>) {
  const values = entries
    .map((entry) => entry.duration_ms)
    .filter((value): value is number => typeof value === "number")
    .sort((a, b) => a - b);
  return { p50_ms: percentile(values, 50), p95_ms: percentile(values, 95) };
}

/** "success" or the error code of an entry. */
function outcomeOf(entry: Record<string, unknown>): string {
  if (entry.outcome === "success") return "success";
  return typeof entry.error_code === "string" ? entry.error_code : String(entry.outcome ?? "unknown");
}

export const activityTool = defineTool({
  name: "activity",
  kind: "utility",
  description:
    "Recent tool calls from the call log: counts by tool and outcome, p50/p95 duration, the last few.",
  annotations: { title: "Activity", readOnlyHint: true },
  schema: z.object({
    recent: z.number().int().min(0).max(100).optional().describe("Calls to list (default 10)"),
    since_minutes: z.number().positive().optional(),
    tool: toolFilterField,
  }),
  async run(args, context) {
    const tail = await readLogTail(context.services.toolCallLogPath);
    let entries = byTool(tail.entries, args.tool);
    if (args.since_minutes !== undefined) {
      const since = Date.now() - args.since_minutes * 60_000;
      entries = entries.filter((entry) => typeof entry.at === "string" && Date.parse(entry.at) >= since);
    }
    const tools: Record<
      string,
      { calls: number; outcomes: Record<string, number>; p50_ms: number; p95_ms: number }
    > = {};
    const outcomes: Record<string, number> = {};
    const grouped = new Map<string, Array<Record<string, unknown>>>();
    for (const entry of entries) {
      const name = String(entry.tool ?? "unknown");
      grouped.set(name, [...(grouped.get(name) ?? []), entry]);
      const outcome = outcomeOf(entry);
      outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
    }
    for (const [name, calls] of [...grouped.entries()].sort((a, b) => b[1].length - a[1].length)) {
      const byOutcome: Record<string, number> = {};
      for (const call of calls) byOutcome[outcomeOf(call)] = (byOutcome[outcomeOf(call)] ?? 0) + 1;
      tools[name] = { calls: calls.length, outcomes: byOutcome, ...durations(calls) };
    }
    const recent = entries.slice(-(args.recent ?? 10)).map((entry) => ({
      at: entry.at,
      tool: entry.tool,
      outcome: outcomeOf(entry),
      duration_ms: entry.duration_ms,
      ...(entry.model !== undefined ? { model: entry.model } : {}),
      trace_id: entry.trace_id,
    }));
    return {
      status: "success",
      total_calls: entries.length,
      ...(entries.length > 0 ? { from: entries[0]?.at, to: entries[entries.length - 1]?.at } : {}),
      outcomes,
      ...durations(entries),
      tools,
      recent: args.recent === 0 ? [] : recent,
      ...(tail.truncated ? { note: `only the last ${LOG_WINDOW_BYTES / 1024} KB of the log were read` } : {}),
    };
  },
});
