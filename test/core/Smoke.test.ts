import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { isTruthy } from "@cellgate/core"

describe("smoke", () => {
  it.effect("runs", () => Effect.sync(() => expect(isTruthy({})).toBe(false)))
})
