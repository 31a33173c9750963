/**
 * WebSocket sessions of the daemon: hello_ack carries `session_id` and `resume_secret`; a hello
 * resumes a session only with its secret (constant-time comparison), else it is given a fresh
 * session. Session ids never appear in /health, /metrics or the health op.
 */
import { randomBytes, randomUUID } from "node:crypto";
import { tokensEqual, type HelloFrame } from "../mcp/frames.js";

/** Most resumable sessions remembered (oldest forgotten first). */
const MAX_REMEMBERED_SESSIONS = 10_000;

export interface SessionGrant {
  sessionId: string;
  secret: string;
  /** The hello resumed `sessionId` (it presented that session's secret). */
  resumed: boolean;
}

/** A fresh session, or the one the hello resumes when it presents that session's secret. */
export function createSessionBook(
  maxRemembered = MAX_REMEMBERED_SESSIONS,
): (hello: HelloFrame) => SessionGrant {
  /** Resumable sessions: session_id → resume_secret. Insertion order = age. */
  const sessionSecrets = new Map<string, string>();
  return (hello) => {
    const known = hello.session_id !== undefined ? sessionSecrets.get(hello.session_id) : undefined;
    if (
      hello.session_id !== undefined &&
      known !== undefined &&
      hello.resume_secret !== undefined &&
      tokensEqual(known, hello.resume_secret)
    ) {
      sessionSecrets.delete(hello.session_id); // re-inserted: the most recently used
      sessionSecrets.set(hello.session_id, known);
      return { sessionId: hello.session_id, secret: known, resumed: true };
    }
    const sessionId = randomUUID();
    const secret = randomBytes(32).toString("base64url");
    sessionSecrets.set(sessionId, secret);
    while (sessionSecrets.size > maxRemembered) {
      const oldest = sessionSecrets.keys().next().value;
      if (oldest === undefined) break;
      sessionSecrets.delete(oldest);
    }
    return { sessionId, secret, resumed: false };
  };
}
