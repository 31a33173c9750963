/** The fake provider's request log and rule queue: recording, waiting for requests, matching rules. */
import type { FakeRule, RecordedRequest } from "./fake-types.js";
import { isRecord, normalizePath } from "./request-parsing.js";

interface RuleEntry {
  rule: FakeRule;
  remaining: number;
}

interface Waiter {
  count: number;
  resolve: () => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
}

/** The recorded requests and the scripted rules of one fake provider instance. */
export interface RequestQueue {
  /** Every request in arrival order (the instance's `requests`). */
  readonly requests: RecordedRequest[];
  /** Adds rules; they are tried in order, and a rule is consumed when its `times` reach 0. */
  enqueue(...rules: FakeRule[]): void;
  /** The first rule matching `record` (raw body text `rawText`), counted down; undefined when none. */
  takeRule(record: RecordedRequest, rawText: string): FakeRule | undefined;
  /** Numbers `record`, appends it and wakes the waiters it satisfies. */
  record(record: RecordedRequest): void;
  /** Delay (ms) for a chat completion that no rule matched. */
  defaultDelayMs(): number;
  setDefaultDelay(ms: number): void;
  chatRequests(): RecordedRequest[];
  /** Resolves once `requests.length >= count`; rejects after `timeoutMs` or when the queue closes. */
  waitForRequests(count: number, timeoutMs?: number): Promise<void>;
  /** Clears rules, recorded requests, the sequence and the default delay. */
  reset(): void;
  /** Rejects every waiter ("fake provider closed") and every later wait that is not yet satisfied. */
  close(): void;
}

/** Creates an empty queue whose default delay is `defaultDelayMs` (ms). */
export function createRequestQueue(defaultDelayMs: number): RequestQueue {
  const requests: RecordedRequest[] = [];
  const rules: RuleEntry[] = [];
  const waiters = new Set<Waiter>();
  let delayMs = defaultDelayMs;
  let sequence = 0;
  let closed = false;

  function notifyWaiters(): void {
    for (const waiter of waiters) {
      if (requests.length >= waiter.count) {
        clearTimeout(waiter.timer);
        waiters.delete(waiter);
        waiter.resolve();
      }
    }
  }

  function takeRule(record: RecordedRequest, rawText: string): FakeRule | undefined {
    const model =
      isRecord(record.body) && typeof record.body.model === "string" ? record.body.model : undefined;
    for (let i = 0; i < rules.length; i++) {
      const entry = rules[i];
      if (entry === undefined) continue;
      if (!ruleMatches(entry.rule, record, model, rawText)) continue;
      entry.remaining -= 1;
      if (entry.remaining <= 0) rules.splice(i, 1);
      return entry.rule;
    }
    return undefined;
  }

  function waitForRequests(count: number, timeoutMs = 2000): Promise<void> {
    if (requests.length >= count) return Promise.resolve();
    if (closed) return Promise.reject(new Error("fake provider closed"));
    return new Promise<void>((resolveWait, rejectWait) => {
      const waiter: Waiter = {
        count,
        resolve: resolveWait,
        reject: rejectWait,
        timer: setTimeout(() => {
          waiters.delete(waiter);
          rejectWait(
            new Error(
              `timed out after ${timeoutMs} ms waiting for ${count} requests (got ${requests.length})`,
            ),
          );
        }, timeoutMs),
      };
      waiter.timer.unref();
      waiters.add(waiter);
    });
  }

  return {
    requests,
    enqueue(...newRules: FakeRule[]): void {
      for (const rule of newRules) {
        const times = rule.times ?? 1;
        if (times > 0) rules.push({ rule, remaining: times });
      }
    },
    takeRule,
    record(record: RecordedRequest): void {
      sequence += 1;
      record.id = sequence;
      requests.push(record);
      notifyWaiters();
    },
    defaultDelayMs: () => delayMs,
    setDefaultDelay(ms: number): void {
      delayMs = Math.max(0, ms);
    },
    chatRequests(): RecordedRequest[] {
      return requests.filter((r) => r.method === "POST" && r.path === "/chat/completions");
    },
    waitForRequests,
    reset(): void {
      rules.length = 0;
      requests.length = 0;
      delayMs = 0;
      sequence = 0;
    },
    close(): void {
      closed = true;
      for (const waiter of waiters) {
        clearTimeout(waiter.timer);
        waiter.reject(new Error("fake provider closed"));
      }
      waiters.clear();
    },
  };
}

/** All of the rule's conditions hold; without `match.path` a rule matches only /chat/completions. */
function ruleMatches(
  rule: FakeRule,
  record: RecordedRequest,
  model: string | undefined,
  rawText: string,
): boolean {
  const match = rule.match ?? {};
  const wantedPath = match.path === undefined ? "/chat/completions" : normalizePath(match.path);
  if (record.path !== wantedPath) return false;
  if (match.model !== undefined) {
    if (model === undefined) return false;
    if (typeof match.model === "string" ? match.model !== model : !match.model.test(model)) return false;
  }
  if (match.bodyIncludes !== undefined && !rawText.includes(match.bodyIncludes)) return false;
  return true;
}
