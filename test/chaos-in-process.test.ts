/**
 * The chaos matrix in-process (`exai stdio`, a real process): every fault of ./support/chaos.ts.
 */
import { chaosMatrix } from "./support/chaos.js";

chaosMatrix("in-process");
