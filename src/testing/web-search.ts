/** GLM web search in the fake provider: the standalone `POST /web_search` endpoint and its results. */
import type { ServerResponse } from "node:http";
import type { RecordedRequest } from "./fake-types.js";
import { isRecord } from "./request-parsing.js";
import { sendJson } from "./responses.js";

/** One search result, shaped like GLM's `search_result` items. */
export interface WebSearchItem {
  title: string;
  content: string;
  link: string;
  media: string;
  icon: string;
  refer: string;
  publish_date: string;
}

/** `count` deterministic results for `query`. */
export function fakeSearchResults(query: string, count: number): WebSearchItem[] {
  const items: WebSearchItem[] = [];
  for (let i = 1; i <= count; i++) {
    items.push({
      title: `Result ${i} for ${query}`,
      content: `Fake search result ${i} about ${query}.`,
      link: `https://example.com/search/${i}?q=${encodeURIComponent(query)}`,
      media: "Example",
      icon: "https://example.com/favicon.ico",
      refer: `ref_${i}`,
      publish_date: "2026-01-01",
    });
  }
  return items;
}

/** `POST /web_search`: 400 without a `search_query`, else 1–10 results (`count`, default 3). */
export function handleWebSearch(record: RecordedRequest, res: ServerResponse): void {
  const body = record.body;
  const query = isRecord(body) && typeof body.search_query === "string" ? body.search_query.trim() : "";
  if (!query) {
    sendJson(res, 400, { error: { code: "1214", message: "search_query is required" } });
    return;
  }
  const requested = isRecord(body) && typeof body.count === "number" ? body.count : 3;
  const count = Math.min(10, Math.max(1, Math.floor(requested)));
  sendJson(res, 200, {
    id: `search-fake-${record.id}`,
    created: Math.floor(Date.now() / 1000),
    request_id:
      isRecord(body) && typeof body.request_id === "string" ? body.request_id : `req-fake-${record.id}`,
    search_intent: [{ query, intent: "SEARCH_ALL", keywords: query.toLowerCase() }],
    search_result: fakeSearchResults(query, count),
  });
}
