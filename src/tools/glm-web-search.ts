/**
 * glm_web_search — Z.ai's standalone web search, `POST {GLM_API_URL}/web_search`
 * (docs.z.ai/api-reference/tools/web-search): {search_engine, search_query, count 1–50,
 * search_domain_filter?, search_recency_filter?} → `search_result[]` of {title, content, link,
 * media, icon, refer, publish_date}.
 *
 * Engine: "search-prime" by default — the only value of the `search_engine` enum in the
 * international (api.z.ai) reference. "search_pro_jina" (named in the docs' prose, and the engine
 * of the chat web_search tool) and the bigmodel.cn engines (search_std, search_pro,
 * search_pro_sogou, search_pro_quark) can be passed in `search_engine`.
 */
import { z } from "zod";
import { defineTool } from "./framework.js";
import { requireProvider } from "./provider-support.js";

const GLM_DEFAULT_SEARCH_ENGINE = "search-prime";

const schema = z.object({
  query: z.string().trim().min(1, "must not be blank"),
  count: z.number().int().min(1).max(50).optional().describe("Default 10"),
  search_domain_filter: z.string().optional().describe("e.g. nodejs.org"),
  search_recency_filter: z.enum(["oneDay", "oneWeek", "oneMonth", "oneYear", "noLimit"]).optional(),
  search_engine: z.string().optional().describe("Default search-prime"),
});

interface SearchResponse {
  search_result?: Array<Record<string, unknown>>;
  search_intent?: unknown[];
  request_id?: string;
  id?: string;
}

export const glmWebSearchTool = defineTool({
  name: "glm_web_search",
  kind: "simple",
  description: "Web search with Z.ai's search API: titles, links, snippets, dates.",
  annotations: { title: "GLM: web search", readOnlyHint: true, openWorldHint: true },
  schema,
  selectProvider: () => "glm",
  async run(args, context) {
    requireProvider(context.services, "glm", "glm_web_search");
    const engine = args.search_engine || GLM_DEFAULT_SEARCH_ENGINE;
    const body = {
      search_engine: engine,
      search_query: args.query,
      count: args.count ?? 10,
      ...(args.search_domain_filter ? { search_domain_filter: args.search_domain_filter } : {}),
      ...(args.search_recency_filter ? { search_recency_filter: args.search_recency_filter } : {}),
    };
    context.progress(`searching the web with ${engine}`);
    // A search is a read: retrying it on a 5xx / timeout is safe.
    const response = await context.providerRequest<SearchResponse>({
      provider: "glm",
      path: "/web_search",
      method: "POST",
      json: body,
      retry: true,
    });
    const results = (response.search_result ?? []).map((item) => ({
      title: item.title,
      link: item.link,
      content: item.content,
      media: item.media,
      publish_date: item.publish_date,
      refer: item.refer,
    }));
    return {
      status: "success",
      query: args.query,
      search_engine: engine,
      results,
      ...(response.search_intent ? { search_intent: response.search_intent } : {}),
      ...(response.request_id ? { provider_request_id: response.request_id } : {}),
      metadata: { provider_used: "glm" },
    };
  },
});
