/** The public types of the fake provider: recorded requests, faults, replies, rules and the instance. */

/** One request as the fake provider saw it. */
export interface RecordedRequest {
  /** 1-based sequence number. */
  id: number;
  method: string;
  /** Path without query and without a `/v1` or `/api/paas/v4` prefix, e.g. "/chat/completions". */
  path: string;
  /** Lower-cased header names. */
  headers: Record<string, string>;
  /** Parsed JSON for JSON bodies; `{fields, file?}` for multipart; raw text otherwise; undefined when empty. */
  body: unknown;
  /** performance.now() at arrival. */
  receivedAt: number;
  /** performance.now() when the response ended normally. */
  completedAt?: number;
  /** performance.now() when the client closed the connection before the response ended. */
  abortedAt?: number;
  /** Kind of the fault applied to this request, if any. */
  faultApplied?: string;
}

/** A scripted misbehaviour for the next matching request(s). */
export type FakeFault =
  /** Never answer (until the client aborts or the server closes). */
  | { kind: "hang_before_headers" }
  /** Streaming: send N content chunks (reasoning chunks are not counted), then go silent forever.
   *  Non-stream: send the headers and the start of the body, then go silent. */
  | { kind: "stall_after_chunks"; chunks: number }
  /** Wait delayMs before the headers; chunkDelayMs between stream chunks. */
  | { kind: "slow"; delayMs: number; chunkDelayMs?: number }
  /** Answer with this status; body is JSON-encoded unless it is a string (sent as is); default body is
   *  `{error:{message:"fake <status>", type:"server_error", code:"<status>"}}`. */
  | { kind: "status"; status: number; body?: unknown; headers?: Record<string, string> }
  /** Destroy the socket (TCP RST) without a response. */
  | { kind: "reset" }
  /** 200 with a body (or an SSE data line) that is not valid JSON. */
  | { kind: "malformed_json" }
  /**
   * 200 that never ends, as fast as the client reads (backpressure respected, so the fake itself
   * holds no backlog): a stream of `chunkChars`-character deltas (default 4096) of `field`
   * (default "content") without a finish_reason; a non-stream or non-chat request gets a JSON body
   * whose string value never closes. `oneLine`: the stream is a single SSE line that never ends
   * (no chunk is ever complete). Until the client disconnects or `limitBytes` are sent.
   */
  | {
      kind: "endless";
      chunkChars?: number;
      field?: "content" | "reasoning";
      oneLine?: boolean;
      limitBytes?: number;
      /** HTTP status of the endless response (default 200; not 200: a JSON body without end). */
      status?: number;
    };

/** A scripted chat completion answer; every field has a default. */
export interface FakeReply {
  /** Default: deterministic echo of the last user message (empty when toolCalls are given). */
  content?: string;
  /** Sent as reasoning_content deltas before the content. Default: a short text for thinking requests. */
  reasoning?: string;
  toolCalls?: Array<{ id?: string; name: string; arguments: string }>;
  /** Default: "tool_calls" when there are tool calls, else "stop". */
  finishReason?: string;
  /** Characters per content / reasoning delta; default 40. */
  chunkSize?: number;
}

/** A rule: which requests it applies to, and what to do with them. */
export interface FakeRule {
  /** All given conditions must match; without `path` the rule matches only /chat/completions. */
  match?: { path?: string; model?: string | RegExp; bodyIncludes?: string };
  /** How many requests this rule applies to; default 1; Infinity allowed. */
  times?: number;
  fault?: FakeFault;
  reply?: FakeReply | ((request: RecordedRequest) => FakeReply);
  /** Delay before answering (added to any fault's delay). */
  delayMs?: number;
}

export interface FakeProviderOptions {
  port?: number;
  host?: string;
  defaultDelayMs?: number;
}

export interface FakeProvider {
  /** "http://127.0.0.1:PORT": usable as an SDK base URL directly (no /v1 needed). */
  readonly url: string;
  readonly requests: RecordedRequest[];
  /** Adds rules; they are tried in order, and a rule is consumed when its `times` reach 0. */
  enqueue(...rules: FakeRule[]): void;
  /** Delay applied to every chat completion that no rule matched. */
  setDefaultDelay(ms: number): void;
  /** Only the POST /chat/completions requests. */
  chatRequests(): RecordedRequest[];
  /** Resolves once `requests.length >= count`; rejects after `timeoutMs` (default 2000). */
  waitForRequests(count: number, timeoutMs?: number): Promise<void>;
  /** Clears rules, recorded requests, uploaded files and the default delay. */
  reset(): void;
  /** Destroys all open sockets and closes the server; never hangs. */
  close(): Promise<void>;
}
