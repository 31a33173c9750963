/** ExaiError.details typed per code (DetailsByCode): wrong facts do not compile; the payload carries them. */
import { describe, expect, expectTypeOf, it } from "vitest";
import { ExaiError, invalidArgument, type AnyDetails, type ErrorDetails } from "../src/base/errors.js";

describe("ExaiError details", () => {
  it("requires each code's facts and refuses unknown ones at compile time", () => {
    const timeout = new ExaiError("TIMEOUT", "the tool call timed out", {
      retryable: true,
      details: { layer: "tool", budget_s: 30 },
    });
    // @ts-expect-error -- TIMEOUT must name its layer and budget
    void new ExaiError("TIMEOUT", "timed out");
    // @ts-expect-error -- "tool_call" is not a timeout layer
    void new ExaiError("TIMEOUT", "timed out", { details: { layer: "tool_call", budget_s: 1 } });
    // @ts-expect-error -- OVER_CAPACITY names the cap that refused
    void new ExaiError("OVER_CAPACITY", "over capacity", { details: { limit: 4 } });
    // @ts-expect-error -- CONFIG_INVALID names its variables
    void new ExaiError("CONFIG_INVALID", "bad", { details: { path: "/x" } });
    // @ts-expect-error -- an unknown fact of FILE_ACCESS_DENIED
    void new ExaiError("FILE_ACCESS_DENIED", "denied", { details: { path: "/x", budget_s: 1 } });
    // Codes without required facts take no options at all.
    void new ExaiError("CANCELLED", "the call was cancelled by the client");
    // @ts-expect-error -- invalidArgument's extra facts are INVALID_ARGUMENT's
    void invalidArgument("prompt", "is empty", { cap: "global" });

    expectTypeOf<ErrorDetails<"TIMEOUT">["budget_s"]>().toEqualTypeOf<number>();
    expectTypeOf<ErrorDetails<"CONFIG_INVALID">["variables"]>().toEqualTypeOf<string[]>();
    expectTypeOf(timeout.details).toEqualTypeOf<AnyDetails>();
    expect(timeout.toPayload("t1")).toEqual({
      status: "error",
      code: "TIMEOUT",
      message: "the tool call timed out",
      trace_id: "t1",
      layer: "tool",
      budget_s: 30,
    });
  });

  it("is still an Error subclass recognised by instanceof and the brand", () => {
    const error = invalidArgument("prompt", "is empty", { value: "" });
    expect(error).toBeInstanceOf(Error);
    expect(error).toBeInstanceOf(ExaiError);
    expect(ExaiError.is(error)).toBe(true);
    expect(ExaiError.is(new Error("x"))).toBe(false);
    expect(error.details).toEqual({ field: "prompt", value: "" });
    expect(error.name).toBe("ExaiError");
  });
});
