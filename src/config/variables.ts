/**
 * Every environment variable exai reads (SPEC §3), as data: name, default, rule and meaning.
 * The zod schema (src/config/schema.ts), `.env.example` and the README's configuration table
 * (src/config/docs.ts) are all derived from this list, so the documentation cannot drift from the
 * code.
 */
import type { VariableSpec } from "./variable-spec.js";
import { DAEMON_VARIABLES } from "./variables-daemon.js";
import { PROVIDER_VARIABLES } from "./variables-providers.js";

export type { VariableKind, VariableSpec } from "./variable-spec.js";

/** The full list, in the order the README and `.env.example` show it. */
export const VARIABLES = [
  ...PROVIDER_VARIABLES,
  ...DAEMON_VARIABLES,
] as const satisfies readonly VariableSpec[];

/** The table seen as plain specs (documentation, the schema's runtime shape). */
export const VARIABLE_SPECS: readonly VariableSpec[] = VARIABLES;

/** One entry of the table, with its literal name, kind and default. */
type Variable = (typeof VARIABLES)[number];
/** Every variable name exai reads. */
export type VariableName = Variable["name"];

/** The parsed type of a variable: numbers for durations and integers, enums as their values. */
type ValueOf<S extends Variable> = S["kind"] extends "seconds" | "integer"
  ? number
  : S["kind"] extends "boolean"
    ? boolean
    : S["kind"] extends "list"
      ? string[]
      : S extends { values: readonly (infer V)[] }
        ? V
        : string;

/**
 * The parsed environment: one property per variable of VARIABLES, typed by its kind, and
 * `undefined` only for variables without a default. A misspelt name is a compile error.
 */
export type ParsedEnvironment = {
  [S in Variable as S["name"]]: S extends { default: string } ? ValueOf<S> : ValueOf<S> | undefined;
};

export type RawEnvironment = Record<string, string | undefined>;
