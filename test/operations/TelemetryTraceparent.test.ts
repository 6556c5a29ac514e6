// The W3C `traceparent` stored with a payload and sent to a region (core's Tracing.ts): any stored text parses to a
// parent or to none (never a throw, never an invalid parent), and a span's own context round-trips.
import { Tracing } from "@cellgate/core"
import { describe, expect, it } from "@effect/vitest"
import { FastCheck, Option } from "effect"

const hex = (n: number) => FastCheck.stringMatching(new RegExp(`^[0-9a-f]{${n}}$`))

describe("Tracing.traceparent", () => {
  it.prop("a span's context round-trips", [hex(32), hex(16), FastCheck.boolean()], ([traceId, spanId, sampled]) => {
    const span = { _tag: "ExternalSpan" as const, traceId, spanId, sampled, context: undefined as never }
    const value = Tracing.traceparent(span)
    const zero = /^0+$/.test(traceId) || /^0+$/.test(spanId)
    if (zero) return Option.isNone(value)
    const parsed = Tracing.parseTraceparent(Option.getOrThrow(value))
    return Option.isSome(parsed) && parsed.value.traceId === traceId && parsed.value.spanId === spanId &&
      parsed.value.sampled === sampled
  })

  it.prop("any text parses to a valid parent or to none", [FastCheck.string()], ([text]) => {
    const parsed = Tracing.parseTraceparent(text)
    return Option.isNone(parsed) || (/^[0-9a-f]{32}$/.test(parsed.value.traceId) &&
      /^[0-9a-f]{16}$/.test(parsed.value.spanId))
  })

  it("the native tracer's spans have no traceparent (nothing is stored or sent when tracing is off)", () => {
    const native = {
      _tag: "ExternalSpan" as const,
      traceId: "native",
      spanId: "native",
      sampled: true,
      context: undefined as never
    }
    expect(Option.isNone(Tracing.traceparent(native))).toBe(true)
    expect(Option.isNone(Tracing.parseTraceparent("00-" + "0".repeat(32) + "-" + "1".repeat(16) + "-01"))).toBe(true)
    expect(Tracing.parseTraceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00")).toMatchObject({
      value: { sampled: false }
    })
  })
})
