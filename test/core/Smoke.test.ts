import { isTruthy } from "@cellgate/core"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"

describe("smoke", () => {
  it.effect("runs", () => Effect.sync(() => expect(isTruthy({})).toBe(false)))
})
