/**
 * kimi_manage_files (full profile) — the files stored at Moonshot: `list` (GET /files, marked with
 * what exai uploaded), `delete` one (DELETE /files/{id}, and forgotten in the Store), `cleanup`
 * (delete the files exai uploaded more than `older_than_hours` ago). Moonshot allows 1,000 files
 * and 10 GB per account (platform.moonshot.ai files API), so old uploads are worth removing.
 *
 * cleanup deletes only files recorded in exai's Store, never other files of the account.
 */
import { z } from "zod";
import { invalidArgument } from "../base/errors.js";
import { defineTool, type ToolContext } from "./framework.js";
import { isNotFound, mapLimited, requireProvider, storeProviderKey } from "./provider-support.js";

const TOOL = "kimi_manage_files";
const DEFAULT_CLEANUP_HOURS = 24;
const DELETE_CONCURRENCY = 4;

const schema = z.object({
  action: z.enum(["list", "delete", "cleanup"]),
  file_id: z.string().min(1).optional().describe("For delete"),
  older_than_hours: z
    .number()
    .positive()
    .optional()
    .describe(`For cleanup (default ${DEFAULT_CLEANUP_HOURS})`),
});

/** A file object of Moonshot's GET /files (OpenAI shape; `created_at` in epoch seconds). */
interface RemoteFile {
  id: string;
  filename?: string;
  bytes?: number;
  created_at?: number;
  purpose?: string;
  status?: string;
}

async function listRemote(context: ToolContext): Promise<RemoteFile[]> {
  const response = await context.providerRequest<{ data?: unknown }>({
    provider: "kimi",
    path: "/files",
    method: "GET",
  });
  const data = Array.isArray(response.data) ? response.data : [];
  return data.filter((item): item is RemoteFile => typeof (item as RemoteFile | null)?.id === "string");
}

/** Deletes one file at Moonshot and in the Store; a file already gone counts as not deleted. */
async function deleteOne(
  context: ToolContext,
  fileId: string,
): Promise<{ file_id: string; deleted: boolean; note?: string }> {
  const key = storeProviderKey("kimi", "file-extract");
  try {
    await context.providerRequest({
      provider: "kimi",
      path: `/files/${encodeURIComponent(fileId)}`,
      method: "DELETE",
    });
  } catch (error) {
    if (!isNotFound(error)) throw error;
    await context.services.store.deleteFile(key, fileId);
    return { file_id: fileId, deleted: false, note: "not found at Moonshot (already deleted)" };
  }
  await context.services.store.deleteFile(key, fileId);
  return { file_id: fileId, deleted: true };
}

export const kimiManageFilesTool = defineTool({
  name: TOOL,
  kind: "simple",
  description:
    "Kimi file storage: list, delete a file_id, or cleanup files exai uploaded over older_than_hours ago.",
  annotations: { title: "Kimi: manage files", destructiveHint: true, openWorldHint: true },
  schema,
  selectProvider: () => "kimi",
  async run(args, context) {
    requireProvider(context.services, "kimi", TOOL);
    const { store } = context.services;
    const key = storeProviderKey("kimi", "file-extract");
    if (args.action === "delete") {
      if (args.file_id === undefined) throw invalidArgument("file_id", "required for action delete");
      return { status: "success", action: "delete", ...(await deleteOne(context, args.file_id)) };
    }
    const [remote, known] = await Promise.all([listRemote(context), store.listFiles(key)]);
    const knownIds = new Set(known.map((file) => file.providerFileId));
    if (args.action === "list") {
      return {
        status: "success",
        action: "list",
        count: remote.length,
        files: remote.map((file) => ({
          file_id: file.id,
          filename: file.filename,
          bytes: file.bytes,
          created_at:
            file.created_at !== undefined ? new Date(file.created_at * 1000).toISOString() : undefined,
          purpose: file.purpose,
          uploaded_by_exai: knownIds.has(file.id),
        })),
      };
    }
    const hours = args.older_than_hours ?? DEFAULT_CLEANUP_HOURS;
    const cutoffS = (Date.now() - hours * 3_600_000) / 1000;
    const remoteIds = new Set(remote.map((file) => file.id));
    const old = remote.filter(
      (file) => knownIds.has(file.id) && file.created_at !== undefined && file.created_at <= cutoffS,
    );
    // Records of files Moonshot no longer has would make smart_file_query reuse a dead id.
    const stale = known.filter((file) => !remoteIds.has(file.providerFileId));
    for (const file of stale) await store.deleteFile(key, file.providerFileId);
    context.progress(`deleting ${old.length} file(s)`);
    const results = await mapLimited(old, DELETE_CONCURRENCY, async (file) => {
      try {
        return await deleteOne(context, file.id);
      } catch (error) {
        // One failed delete must not hide the others: report it per file.
        return {
          file_id: file.id,
          deleted: false,
          note: error instanceof Error ? error.message : String(error),
        };
      }
    });
    return {
      status: "success",
      action: "cleanup",
      older_than_hours: hours,
      deleted: results.filter((result) => result.deleted).map((result) => result.file_id),
      failed: results.filter((result) => !result.deleted),
      kept: remote.length - results.filter((result) => result.deleted).length,
      forgotten_stale_records: stale.length,
    };
  },
});
