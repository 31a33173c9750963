/**
 * The file sandbox a shim sends with each call: the shim's EXAI_ALLOWED_ROOTS when set, else the
 * MCP client's roots (when it offers them; listed once, again after roots/list_changed), else the
 * shim's cwd — so files are judged against the client's project, not the daemon's cwd.
 */
import { isAbsolute } from "node:path";
import { fileURLToPath } from "node:url";
import type { Server } from "@modelcontextprotocol/sdk/server/index.js";
import { RootsListChangedNotificationSchema } from "@modelcontextprotocol/sdk/types.js";
import type { Config } from "../config/load.js";
import type { Logger } from "../base/logging.js";
import { raceSignal } from "../timing/deadline.js";

/** How long the shim waits for its MCP client to list its roots, ms. */
const ROOTS_TIMEOUT_MS = 2000;

/**
 * Registers the roots/list_changed handler on `server` and returns the function that resolves the
 * roots of one call (absolute paths; never empty). It rejects only with `signal`'s reason.
 */
export function createRootsSource(
  server: Server,
  config: Config,
  logger: Logger,
): (signal: AbortSignal) => Promise<string[]> {
  let clientRoots: string[] | undefined;
  let rootsLoaded: Promise<void> | undefined;
  const loadRoots = (): Promise<void> => {
    rootsLoaded ??= (async () => {
      let listed: string[] | undefined;
      if (server.getClientCapabilities()?.roots) {
        try {
          const result = await server.listRoots(undefined, { timeout: ROOTS_TIMEOUT_MS });
          listed = result.roots.flatMap((root) => {
            if (!root.uri.startsWith("file://")) return [];
            try {
              const path = fileURLToPath(root.uri);
              return isAbsolute(path) ? [path] : [];
            } catch {
              return []; // a file URL this platform cannot map to a path (e.g. a remote host)
            }
          });
        } catch (error) {
          // A client that advertises roots but fails to list them: fall back to the shim's cwd.
          logger.warn({ err: error }, "could not list the client's roots; using the shim's cwd");
        }
      }
      clientRoots = listed;
    })();
    return rootsLoaded;
  };
  server.setNotificationHandler(RootsListChangedNotificationSchema, async () => {
    rootsLoaded = undefined;
    await loadRoots();
  });
  return async (signal) => {
    if (config.allowedRoots && config.allowedRoots.length > 0) return config.allowedRoots;
    await raceSignal(loadRoots(), signal);
    return clientRoots && clientRoots.length > 0 ? clientRoots : [config.cwd];
  };
}
