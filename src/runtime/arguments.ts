/**
 * Bounds on tool arguments checked before any schema sees them (SPEC §3 "limits"): zod, the call
 * key's stable JSON and error messages all walk values recursively, so a value nested 100,000
 * levels deep would overflow the stack there. This walk is iterative.
 */
import { ExaiError } from "../base/errors.js";

/**
 * Fails when `value` nests arrays/objects deeper than `maxDepth` levels. The arguments object
 * itself is level 1 (`{prompt: "x"}` has depth 1, `{files: ["a"]}` depth 2). Iterative: any
 * depth is safe to check.
 * @throws ExaiError INVALID_ARGUMENT naming the limit, the top-level field and EXAI_MAX_ARGUMENT_DEPTH.
 */
export function checkArgumentDepth(value: unknown, maxDepth: number): void {
  if (value === null || typeof value !== "object") return;
  // Each entry: a container, its depth and the top-level field it sits under.
  const stack: Array<{ node: object; depth: number; field: string }> = [
    { node: value, depth: 1, field: "arguments" },
  ];
  while (stack.length > 0) {
    const { node, depth, field } = stack.pop() as { node: object; depth: number; field: string };
    if (depth > maxDepth) {
      throw new ExaiError(
        "INVALID_ARGUMENT",
        `${field}: arguments are nested more than ${maxDepth} levels deep (EXAI_MAX_ARGUMENT_DEPTH=${maxDepth}); send flatter values or raise EXAI_MAX_ARGUMENT_DEPTH`,
        { details: { field, limit: maxDepth, variable: "EXAI_MAX_ARGUMENT_DEPTH" } },
      );
    }
    const children: unknown[] = Array.isArray(node) ? node : Object.values(node);
    const keys = depth === 1 && !Array.isArray(node) ? Object.keys(node) : undefined;
    for (let i = 0; i < children.length; i++) {
      const child = children[i];
      if (child !== null && typeof child === "object") {
        stack.push({ node: child, depth: depth + 1, field: keys ? (keys[i] ?? field) : field });
      }
    }
  }
}
