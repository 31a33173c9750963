/**
 * The zod schema over the raw environment, built from the variable table (src/config/variables.ts):
 * one parser per variable kind, each error naming the variable, its value and the rule.
 */
import { z } from "zod";
import {
  VARIABLE_SPECS,
  type ParsedEnvironment,
  type RawEnvironment,
  type VariableSpec,
} from "./variables.js";

/** Parses a duration in seconds: fractions allowed, must be finite and within the variable's bounds. */
function numberSchema(spec: VariableSpec, integerOnly: boolean) {
  return z.string().transform((text, ctx) => {
    const trimmed = text.trim();
    const value = Number(trimmed);
    const rule = describeRule(spec);
    if (trimmed === "" || !Number.isFinite(value) || (integerOnly && !Number.isInteger(value))) {
      ctx.addIssue({ code: "custom", message: `${spec.name}=${JSON.stringify(text)} is not ${rule}` });
      return z.NEVER;
    }
    if (
      (spec.greaterThan !== undefined && !(value > spec.greaterThan)) ||
      (spec.min !== undefined && value < spec.min) ||
      (spec.max !== undefined && value > spec.max)
    ) {
      ctx.addIssue({
        code: "custom",
        message: `${spec.name}=${trimmed} is out of range: it must be ${rule}`,
      });
      return z.NEVER;
    }
    return value;
  });
}

/** A short English statement of a variable's rule, used in error messages and the README. */
export function describeRule(spec: VariableSpec): string {
  switch (spec.kind) {
    case "seconds": {
      const unit = spec.name.endsWith("_HOURS") ? "hours" : "seconds";
      return `a number of ${unit} > ${spec.greaterThan ?? 0}${spec.max !== undefined ? ` and ≤ ${spec.max}` : ""} (fractions allowed)`;
    }
    case "integer":
      return `a whole number from ${spec.min ?? 0} to ${spec.max ?? "∞"}`;
    case "boolean":
      return "true or false (also 1/0, yes/no, on/off)";
    case "enum":
      return `one of ${(spec.values ?? []).join(", ")}`;
    case "url":
      return "an http(s) URL";
    case "list":
      return "a comma-separated list";
    default:
      return "a string";
  }
}

function valueSchema(spec: VariableSpec): z.ZodType<unknown> {
  switch (spec.kind) {
    case "seconds":
      return numberSchema(spec, false);
    case "integer":
      return numberSchema(spec, true);
    case "boolean":
      return z.string().transform((text, ctx) => {
        const normalised = text.trim().toLowerCase();
        if (["true", "1", "yes", "on"].includes(normalised)) return true;
        if (["false", "0", "no", "off"].includes(normalised)) return false;
        ctx.addIssue({
          code: "custom",
          message: `${spec.name}=${JSON.stringify(text)} is not ${describeRule(spec)}`,
        });
        return z.NEVER;
      });
    case "enum":
      return z.string().transform((text, ctx) => {
        const normalised = text.trim().toLowerCase();
        if ((spec.values ?? []).includes(normalised)) return normalised;
        ctx.addIssue({
          code: "custom",
          message: `${spec.name}=${JSON.stringify(text)} is not ${describeRule(spec)}`,
        });
        return z.NEVER;
      });
    case "url":
      return z.string().transform((text, ctx) => {
        const trimmed = text.trim().replace(/\/+$/, "");
        try {
          const url = new URL(trimmed);
          const postgres = spec.name === "DATABASE_URL" && /^postgres(ql)?:$/.test(url.protocol);
          const redis = spec.name === "REDIS_URL" && /^rediss?:$/.test(url.protocol);
          if (url.protocol === "http:" || url.protocol === "https:" || postgres || redis) return trimmed;
        } catch {
          // fall through to the issue below: an unparsable URL is reported like a wrong scheme
        }
        ctx.addIssue({
          code: "custom",
          message: `${spec.name}=${JSON.stringify(text)} is not ${describeRule(spec)}`,
        });
        return z.NEVER;
      });
    case "list":
      return z.string().transform((text) =>
        text
          .split(",")
          .map((item) => item.trim())
          .filter((item) => item.length > 0),
      );
    default:
      return z.string().transform((text) => text.trim());
  }
}

/**
 * The zod schema over the raw environment. Empty strings count as unset (so `FOO=` in `.env`
 * falls back to the default). Output: variable name → parsed value (number, boolean, string,
 * string[]) or undefined.
 */
export function buildEnvironmentSchema(): z.ZodType<ParsedEnvironment, RawEnvironment> {
  const shape: Record<string, z.ZodType<unknown>> = {};
  for (const spec of VARIABLE_SPECS) {
    const inner = valueSchema(spec);
    shape[spec.name] = z.preprocess(
      (value) => (typeof value === "string" && value.trim() === "" ? undefined : value),
      // prefault: the default goes through the same parser as a user value (zod 4 `.default` would skip it).
      spec.default === undefined ? inner.optional() : inner.prefault(spec.default as never),
    );
  }
  // The one cast: the shape is built from the same table `ParsedEnvironment` is derived from, each
  // value by the parser of its kind (numberSchema → number, list → string[], enum → its values…).
  return z.object(shape) as unknown as z.ZodType<ParsedEnvironment, RawEnvironment>;
}
