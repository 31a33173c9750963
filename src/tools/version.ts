/** version — no model: server version, runtime and configuration summary. */
import { z } from "zod";
import { summary } from "../config/timeouts.js";
import { SERVER_NAME } from "../base/version.js";
import { defineTool } from "./framework.js";

export const versionTool = defineTool({
  name: "version",
  kind: "utility",
  description: "Server version, Node version, configured providers, tool profile and the timeout hierarchy.",
  annotations: { title: "Version", readOnlyHint: true },
  schema: z.object({}),
  async run(_args, context) {
    const { config, version, registry } = context.services;
    const stats = context.services.stats();
    return {
      status: "success",
      name: SERVER_NAME,
      version,
      node: process.version,
      mode: stats.mode,
      uptime_s: Math.round((Date.now() - stats.startedAt) / 1000),
      providers: registry.configuredProviders(),
      tool_profile: config.tools.profile,
      timeouts: summary(config.timeouts),
    };
  },
});
