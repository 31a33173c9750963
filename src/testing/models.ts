/** `GET /models` of the fake provider: the GLM and Kimi model ids it answers for. */
import type { ServerResponse } from "node:http";
import { sendJson } from "./responses.js";

const FAKE_MODELS: ReadonlyArray<{ id: string; owned_by: string }> = [
  { id: "glm-5.2", owned_by: "z-ai" },
  { id: "glm-5.1", owned_by: "z-ai" },
  { id: "glm-5", owned_by: "z-ai" },
  { id: "glm-4.7", owned_by: "z-ai" },
  { id: "glm-4.6", owned_by: "z-ai" },
  { id: "glm-4.5", owned_by: "z-ai" },
  { id: "glm-4.5-air", owned_by: "z-ai" },
  { id: "glm-4.5-flash", owned_by: "z-ai" },
  { id: "glm-4.5v", owned_by: "z-ai" },
  { id: "kimi-k2.6", owned_by: "moonshot" },
  { id: "kimi-k2.5", owned_by: "moonshot" },
  { id: "kimi-k2.7-code", owned_by: "moonshot" },
  { id: "kimi-k2-thinking", owned_by: "moonshot" },
  { id: "moonshot-v1-8k", owned_by: "moonshot" },
  { id: "moonshot-v1-32k", owned_by: "moonshot" },
  { id: "moonshot-v1-128k", owned_by: "moonshot" },
];

/** `GET /models`: the list in the OpenAI shape. */
export function sendModels(res: ServerResponse): void {
  sendJson(res, 200, {
    object: "list",
    data: FAKE_MODELS.map((m) => ({
      id: m.id,
      object: "model",
      created: 1767225600,
      owned_by: m.owned_by,
    })),
  });
}
