/**
 * The text of one file as a model sees it (SPEC §4.4): a `--- BEGIN FILE: … ---` block holding the
 * content with right-aligned line numbers, or a one-line placeholder when the content is left out.
 */

export interface ReadFileResult {
  /** The realpath of the file, as shown in the block header. */
  path: string;
  /** The whole block: `--- BEGIN FILE: … ---`, the content (or placeholder), `--- END FILE: … ---`. */
  text: string;
  /** Number of content lines numbered in the block (0 for a placeholder). */
  lines: number;
  /** Size of the file in bytes. */
  bytes: number;
  /** Why the content was left out, e.g. "binary file omitted"; the block then holds `(<placeholder>)`. */
  placeholder?: string;
}

/** How much of a file is inspected for a NUL byte to call it binary (what git does, too). */
export const BINARY_SNIFF_BYTES = 8192;

/**
 * Formats a byte count with decimal units, as people read file sizes: "100 B", "1.4 MB", "1 MB".
 */
export function formatBytes(bytes: number): string {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = bytes;
  let unit = 0;
  while (unit < units.length - 1 && Number(value.toFixed(1)) >= 1000) {
    value /= 1000;
    unit += 1;
  }
  const shown = unit === 0 ? String(Math.round(value)) : String(Number(value.toFixed(1)));
  return `${shown} ${units[unit]}`;
}

/** The block of `filePath` around `body`: BEGIN line, body, END line, final newline. */
export function fileBlock(filePath: string, body: string): string {
  return `--- BEGIN FILE: ${filePath} ---\n${body}\n--- END FILE: ${filePath} ---\n`;
}

/** The result for a file whose content is left out: its block holds `(<reason>)`. */
export function placeholderResult(filePath: string, bytes: number, reason: string): ReadFileResult {
  return { path: filePath, text: fileBlock(filePath, `(${reason})`), lines: 0, bytes, placeholder: reason };
}

/** Splits text into lines without a phantom last line after a final newline; drops CRs of CRLF. */
export function splitLines(text: string): string[] {
  const withoutBom = text.startsWith("\uFEFF") ? text.slice(1) : text;
  if (withoutBom === "") return [];
  const lines = withoutBom.split("\n");
  if (lines[lines.length - 1] === "") lines.pop();
  return lines.map((line) => (line.endsWith("\r") ? line.slice(0, -1) : line));
}

/** The lines with right-aligned numbers (`   1│ line`, width ≥ 4); "(empty file)" for none. */
export function numberLines(lines: readonly string[]): string {
  if (lines.length === 0) return "(empty file)";
  const width = Math.max(4, String(lines.length).length);
  return lines.map((line, index) => `${String(index + 1).padStart(width)}│ ${line}`).join("\n");
}
