/**
 * The shape of one entry of the variable table (SPEC §3) and the builders of its common entries
 * (durations, whole numbers), shared by the table's group files.
 */
export type VariableKind = "seconds" | "integer" | "string" | "url" | "boolean" | "list" | "secret" | "enum";

export interface VariableSpec {
  name: string;
  kind: VariableKind;
  /** Default as the user would write it in `.env`; undefined = unset. */
  default?: string;
  /** Shown in the README table instead of the default (e.g. "derived 1.5 × workflow"). */
  defaultLabel?: string;
  meaning: string;
  group: string;
  /** For `enum`. */
  values?: readonly string[];
  /** Inclusive lower bound for numbers. */
  min?: number;
  /** Exclusive lower bound for numbers (durations must be > 0). */
  greaterThan?: number;
  max?: number;
}

/** A duration in seconds (> 0, ≤ 1 day); `def` undefined = unset by default (derived or off). */
export const durations = <
  const N extends string,
  const D extends string | undefined,
  const X extends Partial<VariableSpec> = Record<never, never>,
>(
  name: N,
  def: D,
  meaning: string,
  group: string,
  extra?: X,
) =>
  ({
    name,
    kind: "seconds",
    default: def,
    meaning,
    group,
    greaterThan: 0,
    max: 86_400,
    ...(extra as X),
  }) as const;
/** A whole number within [min, max]. */
export const integer = <const N extends string, const D extends string | undefined>(
  name: N,
  def: D,
  meaning: string,
  group: string,
  min = 1,
  max = 100_000,
) => ({ name, kind: "integer", default: def, meaning, group, min, max }) as const;
