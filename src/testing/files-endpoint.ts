/** The Kimi-style files API of the fake provider: upload, list, retrieve, content and delete. */
import type { ServerResponse } from "node:http";
import type { RecordedRequest } from "./fake-types.js";
import { isRecord, type MultipartBody } from "./request-parsing.js";
import { errorBody, sendJson } from "./responses.js";

interface StoredFile {
  id: string;
  bytes: number;
  created_at: number;
  filename: string;
  purpose: string;
  content: string;
}

/** The uploaded files of one fake provider instance. */
export interface FileStore {
  /**
   * Answers `POST /files`, `GET /files`, `GET /files/:id`, `GET /files/:id/content` and
   * `DELETE /files/:id`; returns false (nothing sent) for any other request.
   */
  handle(record: RecordedRequest, res: ServerResponse): boolean;
  /** Forgets every file and restarts the id sequence. */
  reset(): void;
}

/** Creates an empty file store. */
export function createFileStore(): FileStore {
  const files = new Map<string, StoredFile>();
  let fileSequence = 0;

  function upload(record: RecordedRequest, res: ServerResponse): void {
    const body = record.body as MultipartBody | undefined;
    const isMultipart = (record.headers["content-type"] ?? "")
      .toLowerCase()
      .startsWith("multipart/form-data");
    if (!isMultipart || !isRecord(body) || body.file === undefined) {
      sendJson(res, 400, errorBody("expected multipart/form-data with a file", "invalid_request_error"));
      return;
    }
    fileSequence += 1;
    const file: StoredFile = {
      id: `file-fake-${fileSequence}`,
      bytes: body.file.bytes,
      created_at: Math.floor(Date.now() / 1000),
      filename: body.file.filename,
      purpose: body.fields.purpose ?? "file-extract",
      content: body.file.content,
    };
    files.set(file.id, file);
    sendJson(res, 200, fileObject(file));
  }

  function handleOne(method: string, id: string, wantsContent: boolean, res: ServerResponse): boolean {
    const file = files.get(id);
    if (wantsContent && method === "GET") {
      if (!file) fileNotFound(res, id);
      else {
        sendJson(res, 200, {
          content: file.content,
          file_type: "text/plain",
          filename: file.filename,
          title: "",
          type: "file",
        });
      }
      return true;
    }
    if (wantsContent) return false;
    if (method === "GET") {
      if (!file) fileNotFound(res, id);
      else sendJson(res, 200, fileObject(file));
      return true;
    }
    if (method === "DELETE") {
      if (!file) fileNotFound(res, id);
      else {
        files.delete(id);
        sendJson(res, 200, { id, object: "file", deleted: true });
      }
      return true;
    }
    return false;
  }

  return {
    handle(record: RecordedRequest, res: ServerResponse): boolean {
      const { method, path } = record;
      if (path === "/files" && method === "POST") {
        upload(record, res);
        return true;
      }
      if (path === "/files" && method === "GET") {
        sendJson(res, 200, { object: "list", data: [...files.values()].map(fileObject), has_more: false });
        return true;
      }
      const match = /^\/files\/([^/]+)(\/content)?$/.exec(path);
      if (!match) return false;
      return handleOne(method, decodeURIComponent(match[1] ?? ""), Boolean(match[2]), res);
    },
    reset(): void {
      files.clear();
      fileSequence = 0;
    },
  };
}

function fileObject(file: StoredFile): Record<string, unknown> {
  return {
    id: file.id,
    object: "file",
    bytes: file.bytes,
    created_at: file.created_at,
    filename: file.filename,
    purpose: file.purpose,
    status: "ok",
    status_details: "",
  };
}

function fileNotFound(res: ServerResponse, id: string): void {
  sendJson(res, 404, errorBody(`file not found: ${id}`, "resource_not_found_error"));
}
