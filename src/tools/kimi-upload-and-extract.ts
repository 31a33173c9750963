/**
 * kimi_upload_and_extract — uploads files to Moonshot (`POST /files`, purpose "file-extract") and
 * returns the text Moonshot extracts (`GET /files/{id}/content`), each as a ready-made system
 * message: Moonshot's documented way to give Kimi a file is its extracted content in a `system`
 * message (platform.moonshot.ai, "use Kimi API for file-based QA"). Identical content is uploaded
 * once (sha256 in the Store).
 */
import { z } from "zod";
import { defineTool, type ToolContext } from "./framework.js";
import {
  mapLimited,
  readLocalFiles,
  requireProvider,
  uploadAndExtract,
  type ExtractedFile,
  type LocalFile,
} from "./provider-support.js";

/** Uploads in flight at once per call (Moonshot rate-limits file parsing at peak times). */
const UPLOAD_CONCURRENCY = 3;

export const uploadFilesField = z.array(z.string()).min(1).describe("Absolute paths of files or directories");

const schema = z.object({ files: uploadFilesField });

interface ExtractedLocalFile {
  file: LocalFile;
  extracted: ExtractedFile;
}

/**
 * Uploads and extracts every file (content seen twice in one call is handled once).
 * @throws ExaiError NO_PROVIDER (KIMI_API_KEY), FILE_ACCESS_DENIED / INVALID_ARGUMENT (`files[i]`),
 *   provider errors.
 */
export async function extractFiles(
  context: ToolContext,
  paths: readonly string[],
  tool: string,
): Promise<ExtractedLocalFile[]> {
  requireProvider(context.services, "kimi", tool);
  const files = await readLocalFiles(context, paths, "files");
  const unique = [...new Map(files.map((file) => [file.sha256, file])).values()];
  const extracted = await mapLimited(unique, UPLOAD_CONCURRENCY, (file) => uploadAndExtract(context, file));
  const bySha = new Map(unique.map((file, index) => [file.sha256, extracted[index] as ExtractedFile]));
  return files.map((file) => ({ file, extracted: bySha.get(file.sha256) as ExtractedFile }));
}

export const kimiUploadAndExtractTool = defineTool({
  name: "kimi_upload_and_extract",
  kind: "simple",
  description:
    "Upload files to Kimi file-extract (PDF, Office, code…); returns each file's text as a system message. Same content is uploaded once.",
  annotations: { title: "Kimi: upload and extract", openWorldHint: true },
  schema,
  selectProvider: () => "kimi",
  async run(args, context) {
    const results = await extractFiles(context, args.files, "kimi_upload_and_extract");
    return {
      status: "success",
      files: results.map(({ file, extracted }) => ({
        path: file.path,
        filename: file.filename,
        bytes: file.bytes,
        file_id: extracted.fileId,
        reused_upload: extracted.reused,
        chars: extracted.text.length,
        system_message: { role: "system", content: extracted.text },
      })),
      metadata: { provider_used: "kimi" },
    };
  },
});
