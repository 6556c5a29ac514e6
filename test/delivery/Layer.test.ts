/**
 * `Delivery.layer`'s requirement type (pinned at compile time: `tsc -p test/tsconfig.json` fails when it grows), the
 * outbox's in-process wake-up (`Outbox.makeWakeSignal`), and `IdGenerator.layerTest`.
 */
import { Memory } from "@cellgate/adapters"
import type { RegionClient, RegionDirectory } from "@cellgate/core"
import { Delivery, Directory, IdGenerator, Outbox } from "@cellgate/core"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Layer, TestClock } from "effect"
import { makeRegion, newPayload } from "./support.js"

type Equals<A, B> = (<T>() => T extends A ? 1 : 2) extends (<T>() => T extends B ? 1 : 2) ? true : false

// exactly these three ports: settings, ids and the wake-up come with defaults or through the outbox
const layerNeeds: Equals<
  Layer.Layer.Context<typeof Delivery.layer>,
  Outbox.Outbox | RegionClient.RegionClient | RegionDirectory.RegionDirectory
> = true
const layerWithNeeds: Equals<
  Layer.Layer.Context<ReturnType<typeof Delivery.layerWith>>,
  Outbox.Outbox | RegionClient.RegionClient | RegionDirectory.RegionDirectory
> = true
const layerProvides: Equals<Layer.Layer.Success<typeof Delivery.layer>, never> = true
const layerFails: Equals<Layer.Layer.Error<typeof Delivery.layer>, never> = true

describe("Delivery.layer", () => {
  it("requires exactly Outbox | RegionClient | RegionDirectory and provides nothing", () => {
    assert.isTrue(layerNeeds && layerWithNeeds && layerProvides && layerFails)
  })

  it.scoped("names its leases with IdGenerator.workerName (layerTest: worker-1)", () =>
    Effect.gen(function*() {
      const outbox = yield* Outbox.Outbox
      yield* Layer.build(Delivery.layer.pipe(Layer.provide(IdGenerator.layerTest)))
      yield* outbox.enqueue([newPayload("jira_server:us:1")])
      // the recording client never answers: the mailbox stays leased by the worker
      for (let i = 0; i < 100 && (yield* outbox.mailboxes)[0]?.leasedBy == null; i++) yield* Effect.yieldNow()
      assert.strictEqual((yield* outbox.mailboxes)[0]?.leasedBy, "worker-1")
    }).pipe(
      Effect.provide(Layer.mergeAll(
        Memory.outboxLayer,
        Memory.directoryLayer(new Directory({ regions: [makeRegion("us", "http://us.example")] })),
        Memory.recordingRegionClient(() => Effect.never)
      ))
    ))
})

describe("Outbox.makeWakeSignal", () => {
  it.effect("a notify wakes a waiter before its maxWaitMs (the clock does not move)", () =>
    Effect.gen(function*() {
      const wake = yield* Outbox.makeWakeSignal
      const waiter = yield* Effect.fork(wake.awaitWork(60_000))
      yield* Effect.yieldNow()
      yield* wake.notify
      yield* Fiber.join(waiter)
    }))

  it.effect("a notify with nobody waiting is kept: the next wait returns at once, the one after waits", () =>
    Effect.gen(function*() {
      const wake = yield* Outbox.makeWakeSignal
      yield* wake.notify
      yield* wake.notify
      yield* wake.awaitWork(60_000) // returns without the clock moving
      const second = yield* Effect.fork(wake.awaitWork(60_000))
      yield* TestClock.adjust(59_999)
      assert.isNull(second.unsafePoll())
      yield* TestClock.adjust(1)
      yield* Fiber.join(second)
    }))

  it.effect("the memory outbox's enqueue notifies; an empty enqueue does not", () =>
    Effect.gen(function*() {
      const outbox = Outbox.makeMemory()
      yield* outbox.enqueue([])
      const idle = yield* Effect.fork(outbox.awaitWork(1_000))
      yield* Effect.yieldNow()
      assert.isNull(idle.unsafePoll())
      yield* outbox.enqueue([newPayload("jira_server:us:1")])
      yield* Fiber.join(idle)
    }))
})

describe("IdGenerator", () => {
  it.effect("defaults to random UUIDs; layerTest counts from 1 for each build", () =>
    Effect.gen(function*() {
      const ids = yield* IdGenerator.IdGenerator
      const a = yield* ids.deliveryId
      assert.match(a, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
      assert.notStrictEqual(a, yield* ids.deliveryId)
      const fixed = yield* Effect.flatMap(
        IdGenerator.IdGenerator,
        (g) => Effect.all([g.deliveryId, g.deliveryId, g.workerName])
      ).pipe(Effect.provide(IdGenerator.layerTest))
      assert.deepStrictEqual(fixed, [IdGenerator.testId(1), IdGenerator.testId(2), "worker-1"])
      assert.strictEqual(IdGenerator.testId(1), "00000000-0000-4000-8000-000000000001")
    }))
})
