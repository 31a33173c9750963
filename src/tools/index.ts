/**
 * The tool registry and profiles (SPEC §4.1): `lean` (11), `standard` (29, default), `full` (31);
 * ENABLED_TOOLS / DISABLED_TOOLS adjust a profile; version and listmodels always stay.
 */
import type { ToolProfile } from "../config/load.js";
import { ExaiError } from "../base/errors.js";
import { analyzeTool } from "./analyze.js";
import { challengeTool } from "./challenge.js";
import { chatTool } from "./chat.js";
import { codereviewTool } from "./codereview.js";
import { consensusTool } from "./consensus.js";
import { debugTool } from "./debug.js";
import { docgenTool } from "./docgen.js";
import type { ToolDefinition } from "./framework.js";
import { plannerTool } from "./planner.js";
import { precommitTool } from "./precommit.js";
import { refactorTool } from "./refactor.js";
import { secauditTool } from "./secaudit.js";
import { testgenTool } from "./testgen.js";
import { tracerTool } from "./tracer.js";
import { glmPayloadPreviewTool } from "./glm-payload-preview.js";
import { glmUploadFileTool } from "./glm-upload-file.js";
import { glmWebSearchTool } from "./glm-web-search.js";
import { healthTool } from "./health.js";
import { kimiCaptureHeadersTool } from "./kimi-capture-headers.js";
import { kimiChatWithToolsTool } from "./kimi-chat-with-tools.js";
import { kimiIntentAnalysisTool } from "./kimi-intent-analysis.js";
import { kimiManageFilesTool } from "./kimi-manage-files.js";
import { kimiMultiFileChatTool } from "./kimi-multi-file-chat.js";
import { kimiUploadAndExtractTool } from "./kimi-upload-and-extract.js";
import { listmodelsTool } from "./listmodels.js";
import { smartFileQueryTool } from "./smart-file-query.js";
import { thinkdeepTool } from "./thinkdeep.js";
import { activityTool, toolcallLogTailTool } from "./toolcall-log.js";
import { providerCapabilitiesTool, statusTool } from "./utilities.js";
import { versionTool } from "./version.js";

/** The 29 tools of the standard profile, in listing order. */
export const STANDARD_TOOLS = [
  "chat",
  "thinkdeep",
  "analyze",
  "debug",
  "codereview",
  "refactor",
  "secaudit",
  "testgen",
  "precommit",
  "planner",
  "docgen",
  "tracer",
  "consensus",
  "challenge",
  "listmodels",
  "version",
  "provider_capabilities",
  "status",
  "health",
  "activity",
  "toolcall_log_tail",
  "kimi_upload_and_extract",
  "kimi_multi_file_chat",
  "kimi_intent_analysis",
  "kimi_capture_headers",
  "kimi_chat_with_tools",
  "glm_upload_file",
  "glm_web_search",
  "glm_payload_preview",
] as const;

export const FULL_TOOLS = [...STANDARD_TOOLS, "smart_file_query", "kimi_manage_files"] as const;

export const LEAN_TOOLS = [
  "analyze",
  "chat",
  "codereview",
  "debug",
  "planner",
  "refactor",
  "status",
  "testgen",
  "thinkdeep",
  "listmodels",
  "version",
] as const;

const ALWAYS = ["version", "listmodels"];

/** Every implemented tool. */
export function allTools(): ToolDefinition[] {
  return [
    chatTool,
    thinkdeepTool,
    analyzeTool,
    debugTool,
    codereviewTool,
    refactorTool,
    secauditTool,
    testgenTool,
    precommitTool,
    plannerTool,
    docgenTool,
    tracerTool,
    consensusTool,
    challengeTool,
    listmodelsTool,
    versionTool,
    providerCapabilitiesTool,
    statusTool,
    healthTool,
    activityTool,
    toolcallLogTailTool,
    kimiUploadAndExtractTool,
    kimiMultiFileChatTool,
    kimiIntentAnalysisTool,
    kimiCaptureHeadersTool,
    kimiChatWithToolsTool,
    glmUploadFileTool,
    glmWebSearchTool,
    glmPayloadPreviewTool,
    smartFileQueryTool,
    kimiManageFilesTool,
  ];
}

/**
 * The tools a configuration lists, in profile order.
 * @throws ExaiError CONFIG_INVALID naming unknown tool names and listing the valid ones.
 */
export function selectTools(options: {
  profile: ToolProfile;
  enabled: readonly string[];
  disabled: readonly string[];
}): ToolDefinition[] {
  const implemented = new Map(allTools().map((tool) => [tool.name, tool]));
  const known = new Set<string>(FULL_TOOLS);
  for (const [variable, names] of [
    ["ENABLED_TOOLS", options.enabled],
    ["DISABLED_TOOLS", options.disabled],
  ] as const) {
    const unknown = names.filter((name) => !known.has(name));
    if (unknown.length > 0) {
      throw new ExaiError(
        "CONFIG_INVALID",
        `${variable} names unknown tool(s): ${unknown.join(", ")}. Valid names: ${[...known].join(", ")}`,
        { details: { variables: [variable], unknown } },
      );
    }
  }
  const base: readonly string[] =
    options.profile === "lean" ? LEAN_TOOLS : options.profile === "full" ? FULL_TOOLS : STANDARD_TOOLS;
  const names = [...base, ...options.enabled.filter((name) => !base.includes(name))].filter(
    (name) => ALWAYS.includes(name) || !options.disabled.includes(name),
  );
  return names
    .map((name) => implemented.get(name))
    .filter((tool): tool is ToolDefinition => tool !== undefined);
}
