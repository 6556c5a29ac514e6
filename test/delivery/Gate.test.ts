/**
 * The worker's region gate (packages/core/src/internal/regionGate.ts; docs/routing.md#fair-adaptive-delivery): slots
 * per region under the adaptive limit, waiting with lease renewals, interruption, pauses; and what a drain does with
 * it (TestClock throughout).
 */
import { Memory } from "@cellgate/adapters"
import { Delivery, DeliverySettings, Metrics, Outbox } from "@cellgate/core"
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Layer, Metric, TestClock } from "effect"
import * as RegionGate from "../../packages/core/src/internal/regionGate.js"
import { enqueueNow, makeRegion, memoryEnv, newPayload, status } from "./support.js"

const settings = { ...DeliverySettings.defaults, concurrency: 16, regionConcurrency: 2 }
const ok: RegionGate.Feedback = { signal: "success" }
const noTick: RegionGate.Waiting<never, never> = { everyMs: 60_000, tick: Effect.void }

const gaugeOf = (region: string) => Effect.map(Metric.value(Metrics.regionConcurrency(region)), (s) => s.value)
const pausedOf = (region: string) => Effect.map(Metric.value(Metrics.regionPausedTotal(region)), (s) => s.count)

/** Lets the forked fibers run (woken waiters resume through a race with their renewal timer). */
const settle = Effect.forEach(Array.from({ length: 20 }), () => Effect.yieldNow(), { discard: true })

/** A send that stays in flight until `release` is completed; `started` counts the sends that began. */
const blocked = () =>
  Effect.map(Deferred.make<void>(), (release) => {
    const log = { started: 0 }
    const send = Effect.zipRight(Effect.sync(() => log.started++), Deferred.await(release))
    return { release, log, send }
  })

describe("RegionGate", () => {
  it.effect("a region has `limit` sends in flight; the next waits and goes, first come first served, when one ends", () =>
    Effect.gen(function*() {
      // concurrency 2: the limit cannot grow past 2, so each slot freed lets exactly one waiter go
      const gate = RegionGate.make({ ...settings, concurrency: 2 })
      const [r1, r2, r3] = [yield* Deferred.make<void>(), yield* Deferred.make<void>(), yield* Deferred.make<void>()]
      const started: Array<string> = []
      const send = (name: string, release: Deferred.Deferred<void>) =>
        Effect.fork(
          gate.send(
            "g1",
            noTick,
            Effect.zipRight(Effect.sync(() => started.push(name)), Deferred.await(release)),
            () => ok
          )
        )
      const f1 = yield* send("1", r1)
      const f2 = yield* send("2", r2)
      yield* settle
      const waiters = [yield* send("3", r3), yield* send("4", r3), yield* send("5", r3)]
      yield* settle
      assert.deepStrictEqual(started, ["1", "2"]) // limit 2: the others wait
      assert.strictEqual(yield* gaugeOf("g1"), 2)
      // another region is not held back
      assert.deepStrictEqual(yield* gate.send("g1-other", noTick, Effect.succeed("x"), () => ok), {
        _tag: "Sent",
        value: "x"
      })
      yield* Deferred.succeed(r1, void 0)
      yield* Fiber.join(f1)
      yield* settle
      assert.deepStrictEqual(started, ["1", "2", "3"])
      yield* Deferred.succeed(r2, void 0)
      yield* Fiber.join(f2)
      yield* settle
      assert.deepStrictEqual(started, ["1", "2", "3", "4"])
      yield* Deferred.succeed(r3, void 0)
      yield* Effect.forEach(waiters, Fiber.join)
      assert.deepStrictEqual(started, ["1", "2", "3", "4", "5"])
    }))

  it.effect("slow start: the first successes double the limit (once within a second), and waiters go at once", () =>
    Effect.gen(function*() {
      const gate = RegionGate.make(settings) // starts at 2
      const a = yield* blocked()
      const fibers = yield* Effect.forEach(
        Array.from({ length: 6 }),
        () => Effect.fork(gate.send("g1b", noTick, a.send, () => ok))
      )
      yield* settle
      assert.strictEqual(a.log.started, 2)
      yield* Deferred.succeed(a.release, void 0)
      yield* Effect.forEach(fibers, Fiber.join)
      assert.strictEqual(a.log.started, 6)
      assert.strictEqual(gate.limitOf("g1b"), 4) // doubled once: the other successes came within the same second
      assert.strictEqual(yield* gaugeOf("g1b"), 4)
      yield* TestClock.adjust(1_000)
      yield* gate.send("g1b", noTick, Effect.void, () => ok)
      assert.strictEqual(gate.limitOf("g1b"), 8)
    }))

  it.effect("an overload halves the limit and the gauge follows; adaptive: false is no gate at all", () =>
    Effect.gen(function*() {
      const gate = RegionGate.make({ ...settings, regionConcurrency: 8 })
      yield* gate.send("g2", noTick, Effect.void, () => ({ signal: "overload" }))
      assert.strictEqual(gate.limitOf("g2"), 4)
      assert.strictEqual(yield* gaugeOf("g2"), 4)
      yield* gate.send("g2", noTick, Effect.void, () => ({ signal: "overload" })) // within the second: no change
      assert.strictEqual(gate.limitOf("g2"), 4)
      yield* TestClock.adjust(1_000)
      yield* gate.send("g2", noTick, Effect.void, () => ({ signal: "overload" }))
      assert.strictEqual(yield* gaugeOf("g2"), 2)
      // the worker uses `none` with adaptive: false: nothing waits, nothing is paused
      const many = yield* Effect.all(
        Array.from({ length: 40 }, () =>
          RegionGate.none.send("g2", noTick, Effect.succeed(1), () => ({
            signal: "overload",
            pauseMs: 60_000
          }))),
        { concurrency: "unbounded" }
      )
      assert.isTrue(many.every((p) => p._tag === "Sent"))
    }))

  it.effect("a waiting send runs its tick (the lease renewal) every everyMs and keeps its place", () =>
    Effect.gen(function*() {
      const gate = RegionGate.make({ ...settings, regionConcurrency: 1 })
      const a = yield* blocked()
      let ticks = 0
      const holder = yield* Effect.fork(gate.send("g3", noTick, a.send, () => ok))
      yield* settle
      const waiter = yield* Effect.fork(
        gate.send("g3", { everyMs: 10_000, tick: Effect.sync(() => ticks++) }, Effect.succeed("second"), () => ok)
      )
      yield* TestClock.adjust(35_000)
      assert.strictEqual(ticks, 3)
      assert.isNull(waiter.unsafePoll())
      yield* Deferred.succeed(a.release, void 0)
      yield* Fiber.join(holder)
      assert.deepStrictEqual(yield* Fiber.join(waiter), { _tag: "Sent", value: "second" })
    }))

  it.effect("a tick that fails ends the wait with its error and leaves the queue", () =>
    Effect.gen(function*() {
      const gate = RegionGate.make({ ...settings, regionConcurrency: 1 })
      const a = yield* blocked()
      const holder = yield* Effect.fork(gate.send("g4", noTick, a.send, () => ok))
      yield* settle
      const failing = yield* Effect.fork(
        gate.send("g4", { everyMs: 1_000, tick: Effect.fail("lease lost" as const) }, Effect.succeed(1), () => ok)
      )
      yield* TestClock.adjust(1_000)
      const exit = yield* Fiber.await(failing)
      assert.isTrue(exit._tag === "Failure")
      yield* Deferred.succeed(a.release, void 0)
      yield* Fiber.join(holder)
      // the failed waiter took nothing: the one slot is free for the next send at once
      assert.deepStrictEqual(yield* gate.send("g4", noTick, Effect.succeed(2), () => ok), { _tag: "Sent", value: 2 })
    }))

  it.effect("interruption: a waiter leaves the queue taking nothing; a holder gives its slot to the next", () =>
    Effect.gen(function*() {
      const gate = RegionGate.make({ ...settings, regionConcurrency: 1 })
      const a = yield* blocked()
      const holder = yield* Effect.fork(gate.send("g5", noTick, a.send, () => ok))
      yield* settle
      const w1 = yield* Effect.fork(gate.send("g5", noTick, Effect.succeed("w1"), () => ok))
      const sent: Array<string> = []
      const w2 = yield* Effect.fork(gate.send("g5", noTick, Effect.sync(() => sent.push("w2")), () => ok))
      yield* settle
      yield* Fiber.interrupt(w1) // waiting: leaves the queue
      assert.deepStrictEqual(sent, [])
      yield* Fiber.interrupt(holder) // holding: the slot goes to w2, the limit is not fed
      yield* Fiber.join(w2)
      assert.deepStrictEqual(sent, ["w2"])
      // w2's success doubled the limit (slow start); the interrupted holder fed nothing
      assert.strictEqual(gate.limitOf("g5"), 2)
      // nothing leaked: exactly two slots now
      const b = yield* blocked()
      const h2 = yield* Effect.fork(gate.send("g5", noTick, b.send, () => ok))
      const h3 = yield* Effect.fork(gate.send("g5", noTick, b.send, () => ok))
      yield* settle
      const w3 = yield* Effect.fork(gate.send("g5", noTick, Effect.succeed(3), () => ok))
      yield* settle
      assert.strictEqual(b.log.started, 2)
      assert.isNull(w3.unsafePoll())
      yield* Deferred.succeed(b.release, void 0)
      yield* Fiber.join(h2)
      yield* Fiber.join(h3)
      yield* Fiber.join(w3)
    }))

  it.effect("429/503 with Retry-After pauses the whole region: waiters are told at once, new sends too, until the end", () =>
    Effect.gen(function*() {
      const gate = RegionGate.make({ ...settings, regionConcurrency: 1 })
      const before = yield* pausedOf("g6")
      const a = yield* blocked()
      const holder = yield* Effect.fork(
        gate.send("g6", noTick, a.send, () => ({ signal: "overload", pauseMs: 2_000 }))
      )
      yield* settle
      const sent: Array<number> = []
      const waiter = yield* Effect.fork(gate.send("g6", noTick, Effect.sync(() => sent.push(1)), () => ok))
      yield* settle
      yield* Deferred.succeed(a.release, void 0)
      yield* Fiber.join(holder)
      assert.deepStrictEqual(yield* Fiber.join(waiter), { _tag: "Paused", until: 2_000 })
      yield* TestClock.adjust(1_999)
      assert.deepStrictEqual(yield* gate.send("g6", noTick, Effect.sync(() => sent.push(2)), () => ok), {
        _tag: "Paused",
        until: 2_000
      })
      assert.deepStrictEqual(sent, [])
      assert.strictEqual((yield* pausedOf("g6")) - before, 1)
      // another region is not paused
      assert.strictEqual((yield* gate.send("g6-other", noTick, Effect.succeed(0), () => ok))._tag, "Sent")
      yield* TestClock.adjust(1)
      assert.strictEqual((yield* gate.send("g6", noTick, Effect.sync(() => sent.push(3)), () => ok))._tag, "Sent")
      assert.deepStrictEqual(sent, [3])
    }))
})

describe("drainMailbox under the worker's gate", () => {
  const us = makeRegion("us", "http://us.example")
  const withGate = (gate: RegionGate.Gate) => Effect.provideService(RegionGate.CurrentGate, gate)
  const claim = (owner: string) =>
    Effect.flatMap(Outbox.Outbox, (o) => o.claim({ owner, now: 0, leaseMs: 30_000, limit: 100 }))

  it.effect("a paused region: the drain stops at once, gives its mailbox back due at the pause's end, counts nothing", () =>
    Effect.gen(function*() {
      const gate = RegionGate.make(settings)
      const outbox = yield* Outbox.Outbox
      yield* enqueueNow([newPayload("jira_server:us:1"), newPayload("jira_server:us:1")])
      yield* enqueueNow([newPayload("jira_server:us:2"), newPayload("jira_server:us:2")])
      yield* claim("w")
      const first = yield* Delivery.drainMailbox("jira_server:us:1", "w").pipe(withGate(gate))
      assert.strictEqual(first.sent, 1)
      assert.strictEqual(first.retried, 1)
      const second = yield* Delivery.drainMailbox("jira_server:us:2", "w").pipe(withGate(gate))
      assert.strictEqual(second.sent, 0)
      assert.isTrue(second.paused)
      assert.strictEqual(second.nextDue, 5_000)
      const [m2] = (yield* outbox.mailboxes).filter((m) => m.mailbox === "jira_server:us:2")
      assert.strictEqual(m2!.nextAttemptAt, 5_000)
      assert.isNull(m2!.leasedBy)
      const heads = yield* outbox.head("jira_server:us:2", 10)
      assert.deepStrictEqual(heads.map((p) => [p.attempts, p.lastError]), [[0, null], [0, null]])
    }).pipe(
      Effect.provide(memoryEnv([us], () => Effect.succeed(status(503, { "retry-after": "5" }))))
    ))

  it.effect("waiting for a slot keeps the lease (renewed every third of leaseMs)", () =>
    Effect.gen(function*() {
      const gate = RegionGate.make({ ...settings, regionConcurrency: 1 })
      const outbox = yield* Outbox.Outbox
      const release = yield* Deferred.make<void>()
      // the region's one slot is held by another send for 20 s (three leases of 6 s)
      const holder = yield* Effect.fork(gate.send("us", noTick, Deferred.await(release), () => ok))
      yield* settle
      yield* enqueueNow([newPayload("jira_server:us:1")])
      yield* Effect.flatMap(Outbox.Outbox, (o) => o.claim({ owner: "w", now: 0, leaseMs: 6_000, limit: 10 }))
      const drain = yield* Effect.fork(Delivery.drainMailbox("jira_server:us:1", "w").pipe(withGate(gate)))
      for (let t = 0; t < 20; t++) yield* TestClock.adjust(1_000)
      const [m] = yield* outbox.mailboxes
      assert.strictEqual(m!.leasedBy, "w")
      assert.isAbove(m!.leaseUntil!, 20_000)
      yield* Deferred.succeed(release, void 0)
      yield* Fiber.join(holder)
      const r = yield* Fiber.join(drain)
      assert.strictEqual(r.delivered, 1)
      assert.isFalse(r.leaseLost)
      const sent = yield* Effect.flatMap(Memory.RegionRecorder, (rec) => rec.sent)
      assert.strictEqual(sent.length, 1)
    }).pipe(
      Effect.provide(Layer.merge(memoryEnv([us]), DeliverySettings.layer({ leaseMs: 6_000 })))
    ))
})
