/**
 * The daemon frame codec shared by the daemon and the shim: frames travel as JSON text WebSocket
 * messages (one object per message, ./frames.ts validates them). `ws` hands a message over as a
 * Buffer, an ArrayBuffer or a list of Buffer fragments; these helpers read any of them.
 */
import type { RawData } from "ws";

/** The UTF-8 text of a received WebSocket message. */
export function frameText(data: RawData): string {
  if (Array.isArray(data)) return Buffer.concat(data).toString("utf8");
  if (data instanceof ArrayBuffer) return Buffer.from(data).toString("utf8");
  return data.toString("utf8");
}

/** The size of a received WebSocket message, bytes. */
export function frameByteLength(data: RawData): number {
  if (Array.isArray(data)) return data.reduce((total, chunk) => total + chunk.length, 0);
  return data instanceof ArrayBuffer ? data.byteLength : data.length;
}

/** The text of a frame to send. */
export function encodeFrame(frame: object): string {
  return JSON.stringify(frame);
}
