import { Memory } from "@cellgate/adapters"
import { JiraServer, StoreUnavailable, VolumeGate } from "@cellgate/core"
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Layer, TestClock } from "effect"

const policy = JiraServer.volumePolicy

/** A buffered gate over the given store gate, built in the test's scope. */
const bufferedOver = (store: VolumeGate.VolumeGate["Type"]) =>
  Layer.build(
    VolumeGate.layerBuffered({ flushIntervalMs: 1_000 }).pipe(
      Layer.provide(Layer.succeed(VolumeGate.VolumeGate, store))
    )
  )
    .pipe(Effect.map((ctx) => Context.get(ctx, VolumeGate.VolumeGate)))

const storeGate = Layer.build(Memory.volumeGateLayer).pipe(Effect.map((ctx) => Context.get(ctx, VolumeGate.VolumeGate)))

const hits = (gate: VolumeGate.VolumeGate["Type"], n: number, key = "k") =>
  Effect.gen(function*() {
    let last = { bucketed: false, switched: false }
    for (let i = 0; i < n; i++) last = yield* gate.hit(key, yield* TestClock.currentTimeMillis, policy)
    return last
  })

describe("VolumeGate.layerBuffered", () => {
  it.scoped("one process alone switches at exactly the same webhook as the store's rule", () =>
    Effect.gen(function*() {
      const gate = yield* bufferedOver(yield* storeGate)
      assert.deepStrictEqual(yield* hits(gate, 3000), { bucketed: false, switched: false })
      assert.deepStrictEqual(yield* hits(gate, 1), { bucketed: true, switched: true })
      assert.deepStrictEqual(yield* hits(gate, 1), { bucketed: true, switched: false })
    }))

  it.scoped("adds its counts to the shared store counter once per interval, and follows the store's verdict", () =>
    Effect.gen(function*() {
      const recorded: Array<number> = []
      const shared = yield* storeGate
      const counting = VolumeGate.VolumeGate.of({
        hit: (key, now, p, count) => {
          recorded.push(count ?? 1)
          return shared.hit(key, now, p, count)
        }
      })
      const a = yield* bufferedOver(counting)
      const b = yield* bufferedOver(counting)
      assert.deepStrictEqual(yield* hits(a, 2000), { bucketed: false, switched: false })
      assert.deepStrictEqual(yield* hits(b, 2000), { bucketed: false, switched: false })
      assert.deepStrictEqual(recorded, []) // nothing written on the request path
      yield* TestClock.adjust("1 second")
      assert.deepStrictEqual(recorded, [2000, 2000]) // one write per process and key
      // together they passed 3000: the process whose write crossed the limit follows at once and reports the
      // switch; the other learns it from the store's answer to its next write, one interval later
      const [ra, rb] = [yield* hits(a, 1), yield* hits(b, 1)]
      assert.deepStrictEqual([ra, rb].filter((r) => r.bucketed && r.switched).length, 1)
      assert.deepStrictEqual([ra, rb].filter((r) => !r.bucketed && !r.switched).length, 1)
      const late = ra.bucketed ? b : a
      yield* TestClock.adjust("1 second")
      assert.deepStrictEqual(yield* hits(late, 1), { bucketed: true, switched: true })
      assert.deepStrictEqual(yield* hits(late, 1), { bucketed: true, switched: false })
      assert.deepStrictEqual(yield* hits(ra.bucketed ? a : b, 1), { bucketed: true, switched: false })
    }))

  it.scoped("a failed write keeps the counts for the next interval", () =>
    Effect.gen(function*() {
      const recorded: Array<number> = []
      let failing = true
      const flaky = VolumeGate.VolumeGate.of({
        hit: (_key, _now, _p, count) =>
          failing
            ? Effect.fail(new StoreUnavailable({ operation: "volume" }))
            : Effect.sync(() => {
              recorded.push(count ?? 1)
              return { bucketed: false, switched: false }
            })
      })
      const gate = yield* bufferedOver(flaky)
      yield* hits(gate, 5)
      yield* TestClock.adjust("1 second")
      assert.deepStrictEqual(recorded, [])
      failing = false
      yield* hits(gate, 2)
      yield* TestClock.adjust("1 second")
      assert.deepStrictEqual(recorded, [7])
    }))
})
