/**
 * Stable JSON (sorted keys, `undefined` members dropped) for call keys and request fingerprints.
 * Iterative: a value nested 100,000 levels deep (refused later by the depth check) cannot
 * overflow the stack here.
 */
export function stableJson(value: unknown): string {
  const out: string[] = [];
  // Tasks popped in order: literal text, or a value still to serialise.
  const stack: Array<{ text: string } | { value: unknown }> = [{ value }];
  while (stack.length > 0) {
    const task = stack.pop() as { text: string } | { value: unknown };
    if ("text" in task) {
      out.push(task.text);
      continue;
    }
    const current = task.value;
    if (current === null || typeof current !== "object") {
      out.push(JSON.stringify(current) ?? "null");
    } else if (Array.isArray(current)) {
      out.push("[");
      stack.push({ text: "]" });
      for (let i = current.length - 1; i >= 0; i--) {
        stack.push({ value: current[i] });
        if (i > 0) stack.push({ text: "," });
      }
    } else {
      const entries = Object.entries(current as Record<string, unknown>)
        .filter(([, item]) => item !== undefined)
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
      out.push("{");
      stack.push({ text: "}" });
      for (let i = entries.length - 1; i >= 0; i--) {
        const [key, item] = entries[i] as [string, unknown];
        stack.push({ value: item });
        stack.push({ text: `${i > 0 ? "," : ""}${JSON.stringify(key)}:` });
      }
    }
  }
  return out.join("");
}
