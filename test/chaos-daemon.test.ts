/**
 * The chaos matrix in shared-daemon mode (`exai shim` → `exai daemon`, real processes): every
 * fault of ./support/chaos.ts. The faults only a daemon has: ./chaos-daemon-faults.test.ts.
 */
import { chaosMatrix } from "./support/chaos.js";

chaosMatrix("daemon");
