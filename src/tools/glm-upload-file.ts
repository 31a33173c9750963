/**
 * glm_upload_file — uploads one file to Z.ai (`POST /files`, multipart {file, purpose}) and returns
 * the file id. Purpose defaults to "file" (SPEC §5); the international docs (docs.z.ai
 * file-upload) list "agent", and bigmodel.cn adds "file-extract", "batch"… — pass it explicitly
 * when your endpoint needs another one. The same content (sha256) with the same purpose is uploaded
 * once; Z.ai keeps uploads 180 days, after which the file is uploaded again.
 */
import { z } from "zod";
import { invalidArgument } from "../base/errors.js";
import { defineTool } from "./framework.js";
import { readLocalFiles, requireProvider, uploadOnce } from "./provider-support.js";

const schema = z.object({
  file: z.string().min(1).describe("Absolute path"),
  purpose: z
    .string()
    .regex(/^[a-z][a-z-]*$/, "must be a lower-case purpose such as file, agent or file-extract")
    .optional()
    .describe("file (default), agent, file-extract…"),
});

export const glmUploadFileTool = defineTool({
  name: "glm_upload_file",
  kind: "simple",
  description:
    "Upload a file to GLM (Z.ai); returns its file id. Same content and purpose are uploaded once.",
  annotations: { title: "GLM: upload file", openWorldHint: true },
  schema,
  async run(args, context) {
    const provider = requireProvider(context.services, "glm", "glm_upload_file");
    const files = await readLocalFiles(context, [args.file], "file");
    const file = files[0];
    if (!file || files.length > 1) {
      throw invalidArgument("file", `${args.file} is a directory; pass the path of one file`);
    }
    const purpose = args.purpose ?? "file";
    const upload = await uploadOnce(context, provider, file, purpose);
    return {
      status: "success",
      file_id: upload.fileId,
      reused_upload: upload.reused,
      path: file.path,
      filename: file.filename,
      bytes: file.bytes,
      sha256: file.sha256,
      purpose,
      metadata: { provider_used: "glm" },
    };
  },
});
