/**
 * Images for vision models (SPEC §4.4): read through the sandbox with the image size limit
 * (EXAI_MAX_IMAGE_MB) and accepted only when their bytes are a PNG, JPEG, GIF or WebP image by
 * signature — whatever the file name says — so that no other file is sent as an "image".
 */
import { invalidArgument } from "../base/errors.js";
import { formatBytes, type FileReader } from "./reader.js";

/** The image formats accepted, as MIME subtypes. */
export type ImageType = "png" | "jpeg" | "gif" | "webp";

/** A checked image, ready for a `image_url` content part. */
export interface CheckedImage {
  type: ImageType;
  /** `data:image/<type>;base64,<bytes>`. */
  dataUrl: string;
  /** Size of the image, bytes. */
  bytes: number;
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** The image format of `bytes` by its signature (magic number), or undefined when it is none of them. */
export function imageType(bytes: Uint8Array): ImageType | undefined {
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buffer.length >= 8 && buffer.subarray(0, 8).equals(PNG_SIGNATURE)) return "png";
  if (buffer.length >= 3 && buffer[0] === 0xff && buffer[1] === 0xd8 && buffer[2] === 0xff) return "jpeg";
  const head = buffer.toString("latin1", 0, 12);
  if (head.startsWith("GIF87a") || head.startsWith("GIF89a")) return "gif";
  if (head.length === 12 && head.startsWith("RIFF") && head.endsWith("WEBP")) return "webp";
  return undefined;
}

/**
 * Reads and checks one image argument: a `data:image/…;base64,` URL (decoded and checked the same
 * way) or an absolute path read through `reader` (sandbox rules, at most `maxBytes`, refused before
 * a byte is read when the file reports a larger size).
 * @param field the argument, e.g. "images[0]".
 * @param maxBytes the image size limit, bytes (config `limits.imageBytes`).
 * @throws ExaiError INVALID_ARGUMENT naming `field` and the path when the image is over the limit
 *   or its bytes are not a PNG, JPEG, GIF or WebP image; the sandbox's errors for the path
 *   (FILE_ACCESS_DENIED outside the roots or for secrets and /proc files; INVALID_ARGUMENT for a
 *   missing file, a FIFO or device); the signal's reason when aborted.
 */
export async function readImage(
  reader: FileReader,
  input: string,
  field: string,
  maxBytes: number,
  signal?: AbortSignal,
): Promise<CheckedImage> {
  const limit = `images are limited to ${formatMiB(maxBytes)} each (EXAI_MAX_IMAGE_MB)`;
  if (typeof input === "string" && input.startsWith("data:")) {
    const match = /^data:image\/[a-z0-9.+-]+;base64,/i.exec(input);
    if (!match) {
      throw invalidArgument(field, "a data URL image must be data:image/<type>;base64,<data>", {
        path: input.slice(0, 40),
      });
    }
    const encoded = input.slice(match[0].length);
    if (Math.floor((encoded.length * 3) / 4) > maxBytes) {
      throw invalidArgument(field, `the data URL image is larger than ${formatMiB(maxBytes)}; ${limit}`);
    }
    const content = Buffer.from(encoded, "base64");
    const type = imageType(content);
    if (type === undefined) {
      throw invalidArgument(field, "the data URL does not hold a PNG, JPEG, GIF or WebP image");
    }
    return {
      type,
      dataUrl: `data:image/${type};base64,${content.toString("base64")}`,
      bytes: content.length,
    };
  }

  const file = await reader.open(input, { purpose: "image", field, maxBytes, signal });
  if (file.content === undefined) {
    throw invalidArgument(
      field,
      `${JSON.stringify(input)} is ${formatBytes(file.size)}; ${limit}. Pass a smaller image`,
      { path: input, bytes: file.size, limit: maxBytes },
    );
  }
  const type = imageType(file.content);
  if (type === undefined) {
    throw invalidArgument(
      field,
      `${JSON.stringify(input)} is not a PNG, JPEG, GIF or WebP image (its bytes do not start with ` +
        `one of their signatures); pass an image file`,
      { path: input },
    );
  }
  return {
    type,
    dataUrl: `data:image/${type};base64,${file.content.toString("base64")}`,
    bytes: file.content.length,
  };
}

function formatMiB(bytes: number): string {
  return `${Number((bytes / 1_048_576).toFixed(1))} MiB`;
}
