/**
 * The adaptive per-region limit as pure logic (`DeliveryPolicy.limitStart` / `limitAfter`,
 * docs/routing.md#fair-adaptive-delivery): properties over generated (answer, time step) sequences, and examples of
 * slow start and congestion avoidance.
 */
import { DeliveryPolicy, DeliverySettings } from "@cellgate/core"
import { assert, describe, it } from "@effect/vitest"
import { FastCheck as fc } from "effect"

const { LIMIT_STEP_MS, limitAfter, limitStart, loadSignal } = DeliveryPolicy
type Signal = DeliveryPolicy.LoadSignal

const settingsArb = fc.record({
  concurrency: fc.integer({ min: 1, max: 64 }),
  regionConcurrency: fc.integer({ min: 1, max: 100 }),
  adaptive: fc.constant(true)
})

// time steps from "at the same ms" to "a few seconds later", with bursts of small steps (answers in flight together)
const stepArb = fc.record({
  signal: fc.constantFrom<Signal>("success", "success", "success", "overload", "other"),
  dt: fc.oneof(fc.integer({ min: 0, max: 20 }), fc.integer({ min: 0, max: 1_500 }), fc.integer({ min: 0, max: 4_000 }))
})

interface Change {
  /** The answer's place in the sequence. */
  readonly index: number
  readonly at: number
  readonly from: number
  readonly to: number
  readonly signal: Signal
  readonly slowStart: boolean
  /** Successes in a row before this answer (since the last change or the last answer that was not a success). */
  readonly row: number
}

/** Runs the steps from `start` (epoch ms) and returns every state and every change of the limit. */
const simulate = (
  settings: Pick<DeliverySettings.Settings, "concurrency" | "regionConcurrency" | "adaptive">,
  steps: ReadonlyArray<{ readonly signal: Signal; readonly dt: number }>,
  start = 1_700_000_000_000
) => {
  let state = limitStart(settings)
  let now = start
  let row = 0
  const states = [state]
  const changes: Array<Change> = []
  for (const [index, { dt, signal }] of steps.entries()) {
    now += dt
    const next = limitAfter(state, signal, now, settings)
    if (next.limit !== state.limit) {
      changes.push({ index, at: now, from: state.limit, to: next.limit, signal, slowStart: state.slowStart, row })
    }
    row = signal === "success" && next.limit === state.limit ? row + 1 : 0
    // a halving that left the limit at 1 is still a halving: it ends slow start and starts the damping
    if (next.halvedAt !== state.halvedAt) {
      changes.push({ index, at: now, from: state.limit, to: next.limit, signal, slowStart: state.slowStart, row: -1 })
    }
    state = next
    states.push(state)
  }
  return { states, changes }
}

const halvings = (changes: ReadonlyArray<Change>) => changes.filter((c) => c.to < c.from || c.row === -1)
const raises = (changes: ReadonlyArray<Change>) => changes.filter((c) => c.to > c.from)

describe("DeliveryPolicy.limitAfter (generated answers and time steps)", () => {
  it.prop(
    "never below 1, never above concurrency",
    [settingsArb, fc.array(stepArb, { maxLength: 300 })],
    ([s, steps]) => {
      for (const state of simulate(s, steps).states) {
        assert.isAtLeast(state.limit, 1)
        assert.isAtMost(state.limit, s.concurrency)
        assert.isTrue(Number.isInteger(state.limit))
      }
      return true
    },
    { fastCheck: { numRuns: 300 } }
  )

  it.prop(
    "halved at most once a second, and only on an overload",
    [settingsArb, fc.array(stepArb, { maxLength: 300 })],
    ([s, steps]) => {
      const { changes } = simulate(s, steps)
      const down = halvings(changes)
      for (const c of down) {
        assert.strictEqual(c.signal, "overload")
        assert.strictEqual(c.to, Math.max(1, Math.floor(c.from / 2)))
      }
      const times = [...new Set(down.map((c) => c.at))]
      for (let i = 1; i < times.length; i++) assert.isAtLeast(times[i]! - times[i - 1]!, LIMIT_STEP_MS)
      return true
    },
    { fastCheck: { numRuns: 300 } }
  )

  it.prop(
    "raised at most once a second, never within a second of a halving, only on a success",
    [settingsArb, fc.array(stepArb, { maxLength: 300 })],
    ([s, steps]) => {
      const { changes } = simulate(s, steps)
      const up = raises(changes)
      for (let i = 1; i < up.length; i++) assert.isAtLeast(up[i]!.at - up[i - 1]!.at, LIMIT_STEP_MS)
      for (const r of up) {
        assert.strictEqual(r.signal, "success")
        for (const h of halvings(changes)) {
          if (h.index < r.index) assert.isAtLeast(r.at - h.at, LIMIT_STEP_MS)
        }
      }
      return true
    },
    { fastCheck: { numRuns: 300 } }
  )

  it.prop(
    "slow start doubles until the first halving; after it, +1 only after `limit` successes in a row",
    [settingsArb, fc.array(stepArb, { maxLength: 300 })],
    ([s, steps]) => {
      const { changes } = simulate(s, steps)
      const firstHalving = halvings(changes)[0]?.index ?? Number.POSITIVE_INFINITY
      for (const r of raises(changes)) {
        if (r.index < firstHalving) {
          assert.isTrue(r.slowStart)
          assert.strictEqual(r.to, Math.min(2 * r.from, s.concurrency))
        } else {
          assert.isFalse(r.slowStart)
          assert.strictEqual(r.to, r.from + 1)
          // this success makes `row + 1` in a row
          assert.isAtLeast(r.row + 1, r.from)
        }
      }
      return true
    },
    { fastCheck: { numRuns: 300 } }
  )

  it.prop(
    "`other` never moves the limit; adaptive: false keeps concurrency whatever the answers",
    [settingsArb, fc.array(stepArb, { maxLength: 200 })],
    ([s, steps]) => {
      for (const c of simulate(s, steps).changes) assert.notStrictEqual(c.signal, "other")
      const fixed = { ...s, adaptive: false }
      for (const state of simulate(fixed, steps).states) assert.strictEqual(state.limit, s.concurrency)
      return true
    },
    { fastCheck: { numRuns: 200 } }
  )
})

describe("DeliveryPolicy.limitStart / limitAfter (examples)", () => {
  const s = { ...DeliverySettings.defaults, concurrency: 64, regionConcurrency: 4 }
  const T = 1_700_000_000_000

  it("starts at regionConcurrency clamped to [1, concurrency]", () => {
    assert.strictEqual(limitStart(s).limit, 4)
    assert.strictEqual(limitStart({ ...s, regionConcurrency: 100 }).limit, 64)
    assert.strictEqual(limitStart({ ...s, concurrency: 2 }).limit, 2)
    assert.strictEqual(limitStart({ ...s, adaptive: false }).limit, 64)
    assert.isTrue(limitStart(s).slowStart)
  })

  it("slow start: doubles at most once a second (4 → 8 → 16 → 32 → 64, capped)", () => {
    const run = (pairs: ReadonlyArray<[number, Signal]>) => {
      let state = limitStart(s)
      return pairs.map(([at, signal]) => (state = limitAfter(state, signal, T + at, s)).limit)
    }
    assert.deepStrictEqual(
      run([
        [0, "success"],
        [500, "success"],
        [999, "success"],
        [1000, "success"],
        [2000, "success"],
        [3000, "success"],
        [
          4000,
          "success"
        ],
        [5000, "success"]
      ]),
      [8, 8, 8, 16, 32, 64, 64, 64]
    )
  })

  it("an overload halves (once a second) and ends slow start; congestion avoidance then adds 1 after `limit` successes", () => {
    let state = limitStart(s)
    const at = (ms: number, signal: Signal) => (state = limitAfter(state, signal, T + ms, s))
    at(0, "success") // 8
    at(1_000, "success") // 16
    assert.strictEqual(state.limit, 16)
    at(1_500, "overload")
    assert.strictEqual(state.limit, 8)
    assert.isFalse(state.slowStart)
    at(1_600, "overload") // answers of requests sent under 16: no second halving
    at(1_900, "overload")
    assert.strictEqual(state.limit, 8)
    // 8 successes in a row, but within a second of the halving: no raise yet
    for (let i = 0; i < 8; i++) at(2_000 + i, "success")
    assert.strictEqual(state.limit, 8)
    at(2_500, "success") // a second after the halving, 9 in a row ≥ 8
    assert.strictEqual(state.limit, 9)
    // the next raise needs 9 successes in a row and a second: 8 then a 404 breaks the row
    for (let i = 0; i < 8; i++) at(3_600 + i, "success")
    at(3_700, "other")
    for (let i = 0; i < 8; i++) at(3_800 + i, "success")
    assert.strictEqual(state.limit, 9)
    at(3_900, "success") // the ninth in a row
    assert.strictEqual(state.limit, 10)
    at(4_500, "overload") // 5
    at(5_600, "overload") // 2
    at(6_700, "overload") // 1
    at(7_800, "overload") // still 1
    assert.strictEqual(state.limit, 1)
  })

  it("loadSignal: 2xx success; 429, 503, timeout, connection overload; the rest other", () => {
    assert.deepStrictEqual(
      [200, 204, 299, 429, 503, "timeout" as const, "connection" as const, 500, 502, 404, 301, 400].map(loadSignal),
      [
        "success",
        "success",
        "success",
        "overload",
        "overload",
        "overload",
        "overload",
        "other",
        "other",
        "other",
        "other",
        "other"
      ]
    )
  })
})
