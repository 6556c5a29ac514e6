/**
 * Drain slices, the `x-cellgate-sequence` header and `cellgate_first_delivery_seconds`
 * (docs/routing.md#fair-adaptive-delivery), against the memory outbox with a recording region client (TestClock); the
 * sequence header once more against SQLite, where the store assigns the numbers.
 */
import { Memory } from "@cellgate/adapters"
import * as Sqlite from "@cellgate/adapters/Sqlite"
import { Delivery, DeliverySettings, Directory, Metrics, Outbox, outgoingHeaders } from "@cellgate/core"
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Layer, Metric, Random, TestClock } from "effect"
import { drainDue, enqueueNow, makeRegion, memoryEnv, newPayload, status } from "./support.js"

const us = makeRegion("us", "http://us.example")
const MIN = 60_000

const sent = Effect.flatMap(Memory.RegionRecorder, (r) => r.sent)
const sentPaths = Effect.map(sent, (s) => s.map((x) => x.request.path))
const mailboxRow = (mailbox: string) =>
  Effect.map(Effect.flatMap(Outbox.Outbox, (o) => o.mailboxes), (ms) => ms.find((m) => m.mailbox === mailbox))

const fill = (mailbox: string, n: number) =>
  Array.from({ length: n }, (_, i) => newPayload(mailbox, { path: `/${mailbox}/p${i}` }))

describe("drain slices", () => {
  it.effect("100 payloads, drainSlice 32: a drain sends 32 and gives the mailbox back due at once; order kept", () =>
    Effect.gen(function*() {
      const m = "jira_server:us:1"
      const ps = fill(m, 100)
      yield* enqueueNow(ps)
      yield* TestClock.adjust(5_000)
      const [first] = yield* drainDue("w")
      assert.strictEqual(first!.sent, 32)
      assert.strictEqual(first!.delivered, 32)
      assert.isTrue(first!.sliced)
      assert.strictEqual(first!.nextDue, 5_000)
      const row = yield* mailboxRow(m)
      assert.strictEqual(row!.depth, 68)
      assert.strictEqual(row!.nextAttemptAt, 5_000) // due at once: claimable without the clock moving
      assert.isNull(row!.leasedBy)
      const rest = yield* drainDue("w")
      assert.deepStrictEqual(rest.map((r) => [r.sent, r.sliced]), [[32, true]])
      const more = [...(yield* drainDue("w")), ...(yield* drainDue("w"))]
      assert.deepStrictEqual(more.map((r) => [r.sent, r.sliced]), [[32, true], [4, false]])
      assert.isUndefined(yield* mailboxRow(m))
      assert.deepStrictEqual(yield* sentPaths, ps.map((p) => p.path))
    }).pipe(Effect.provide(memoryEnv([us]))))

  it.effect("exactly drainSlice payloads: not sliced, the mailbox is gone", () =>
    Effect.gen(function*() {
      yield* enqueueNow(fill("jira_server:us:1", 32))
      const [r] = yield* drainDue("w")
      assert.strictEqual(r!.sent, 32)
      assert.isFalse(r!.sliced)
      assert.isUndefined(yield* mailboxRow("jira_server:us:1"))
    }).pipe(Effect.provide(memoryEnv([us]))))

  it.effect("drainSlice 0 drains to the end", () =>
    Effect.gen(function*() {
      const ps = fill("jira_server:us:1", 100)
      yield* enqueueNow(ps)
      const [r] = yield* drainDue("w")
      assert.strictEqual(r!.sent, 100)
      assert.isFalse(r!.sliced)
      assert.deepStrictEqual(yield* sentPaths, ps.map((p) => p.path))
    }).pipe(Effect.provide(Layer.merge(memoryEnv([us]), DeliverySettings.layer({ drainSlice: 0 })))))

  it.effect("a slice counts what the drain handled, dead-lettered unsent included", () =>
    Effect.gen(function*() {
      // 5 payloads too old to send, then 10 fresh: a slice of 8 takes the 5 dead letters and 3 sends
      yield* enqueueNow(fill("jira_server:us:1", 5))
      yield* TestClock.adjust(2 * MIN)
      yield* enqueueNow(fill("jira_server:us:1", 10))
      const [r] = yield* drainDue("w")
      assert.deepStrictEqual([r!.deadLettered, r!.sent, r!.sliced], [5, 3, true])
    }).pipe(
      Effect.provide(Layer.merge(memoryEnv([us]), DeliverySettings.layer({ drainSlice: 8, maxAgeMs: MIN })))
    ))

  it.effect("skip-on-failure mailboxes are sliced too: the waiting head is passed over, each drain sends a slice", () =>
    Effect.gen(function*() {
      const m = "github:us:1"
      const ps = fill(m, 50)
      yield* enqueueNow(ps)
      const [a] = yield* drainDue("w")
      // the head fails (retry), 31 more are delivered: 32 attempted
      assert.deepStrictEqual([a!.sent, a!.retried, a!.delivered, a!.sliced], [32, 1, 31, true])
      assert.strictEqual(a!.nextDue, 0)
      const [b] = yield* drainDue("w")
      // the head waits for its backoff: passed over, not sent; the other 18 go
      assert.deepStrictEqual([b!.sent, b!.delivered, b!.sliced], [18, 18, false])
      assert.deepStrictEqual((yield* sentPaths).slice(1), ps.slice(1).map((p) => p.path))
      assert.strictEqual((yield* mailboxRow(m))!.depth, 1)
    }).pipe(
      Effect.withRandom(Random.fixed([0.5])),
      Effect.provide(memoryEnv([us], (_, req) => Effect.succeed(status(req.path.endsWith("/p0") ? 503 : 200))))
    ))
})

describe("x-cellgate-sequence", () => {
  const sequences = Effect.map(
    sent,
    (s) =>
      s.map((
        x
      ) => [
        x.request.headers["x-cellgate-mailbox"],
        x.request.headers["x-cellgate-sequence"],
        x.request.headers["x-cellgate-attempt"]
      ])
  )

  it.effect("1, 2, 3 … per mailbox in enqueue order, the same on a retry", () =>
    Effect.gen(function*() {
      yield* enqueueNow([newPayload("jira_server:us:1"), newPayload("jira_server:us:2")])
      yield* enqueueNow([newPayload("jira_server:us:1"), newPayload("jira_server:us:1")])
      yield* drainDue("w")
      yield* TestClock.adjust(10 * MIN)
      yield* drainDue("w")
      assert.deepStrictEqual(yield* sequences, [
        ["jira_server:us:1", "1", "1"], // 503: retried later
        ["jira_server:us:2", "1", "1"],
        ["jira_server:us:1", "1", "2"], // the same number on the retry
        ["jira_server:us:1", "2", "1"],
        ["jira_server:us:1", "3", "1"]
      ])
    }).pipe(
      Effect.withRandom(Random.fixed([0.5])),
      Effect.provide(memoryEnv(
        [us],
        (() => {
          let n = 0
          return () => Effect.succeed(status(n++ === 0 ? 503 : 200))
        })()
      ))
    ))

  it.effect("a dead letter keeps its number; replayed, it arrives after higher numbers with the same one", () =>
    Effect.gen(function*() {
      const outbox = yield* Outbox.Outbox
      yield* enqueueNow([newPayload("jira_server:us:1", { path: "/bad" }), newPayload("jira_server:us:1")])
      yield* drainDue("w")
      assert.strictEqual(yield* outbox.replay("all", 0), 1)
      yield* drainDue("w")
      assert.deepStrictEqual((yield* sequences).map((s) => s[1]), ["1", "2", "1"])
    }).pipe(
      Effect.provide(memoryEnv(
        [us],
        (() => {
          let n = 0
          return (_, req) => Effect.succeed(status(req.path === "/bad" && n++ === 0 ? 404 : 200))
        })()
      ))
    ))

  it.effect("synchronous forwards (no sequence in the meta) carry none", () =>
    Effect.gen(function*() {
      const none = yield* outgoingHeaders(us, {}, new Uint8Array(), { deliveryId: "d", attempt: 1 }, 0)
      assert.isUndefined(none["x-cellgate-sequence"])
      const some = yield* outgoingHeaders(us, { "x-cellgate-sequence": "99" }, new Uint8Array(), {
        deliveryId: "d",
        attempt: 1,
        mailbox: "m",
        sequence: 7
      }, 0)
      assert.strictEqual(some["x-cellgate-sequence"], "7") // a sender's own x-cellgate-* never goes on
    }))

  // The SQL stores' `sequence` is built in parallel (packages/adapters): this test needs it.
  it.scoped("SQLite store: the numbers the store assigned arrive as the header, the same on a retry", () =>
    Effect.gen(function*() {
      const ctx = yield* Layer.build(Sqlite.layer({ path: ":memory:" }))
      // only the store's outbox: the directory is the memory one with the region
      yield* Effect.gen(function*() {
        yield* enqueueNow([newPayload("jira_server:us:1"), newPayload("jira_server:us:1")])
        yield* enqueueNow([newPayload("jira_server:us:2")])
        yield* drainDue("w")
        yield* TestClock.adjust(10 * MIN)
        yield* drainDue("w")
      }).pipe(Effect.provideService(Outbox.Outbox, Context.get(ctx, Outbox.Outbox)))
      assert.deepStrictEqual(yield* sequences, [
        ["jira_server:us:1", "1", "1"],
        ["jira_server:us:2", "1", "1"],
        ["jira_server:us:1", "1", "2"],
        ["jira_server:us:1", "2", "1"]
      ])
    }).pipe(
      Effect.withRandom(Random.fixed([0.5])),
      Effect.provide(Layer.merge(
        Memory.directoryLayer(new Directory({ regions: [us] })),
        Memory.recordingRegionClient((() => {
          let n = 0
          return () => Effect.succeed(status(n++ === 0 ? 503 : 200))
        })())
      ))
    ))
})

describe("cellgate_first_delivery_seconds", () => {
  const fd = makeRegion("fd", "http://fd.example")
  const histogram = Metric.value(Metrics.firstDeliverySeconds("fd"))

  it.effect("from receivedAt to the first attempt sent, once per payload (not on retries)", () =>
    Effect.gen(function*() {
      const before = yield* histogram
      yield* enqueueNow([newPayload("jira_server:fd:1")])
      yield* TestClock.adjust(7_000)
      yield* enqueueNow([newPayload("jira_server:fd:2")])
      yield* drainDue("w") // 7 s and 0 s; the first one fails
      yield* TestClock.adjust(10 * MIN)
      yield* drainDue("w") // its retry is not a first delivery
      const after = yield* histogram
      assert.strictEqual(after.count - before.count, 2)
      assert.approximately(after.sum - before.sum, 7, 1e-9)
      assert.strictEqual((yield* sent).length, 3)
    }).pipe(
      Effect.withRandom(Random.fixed([0.5])),
      Effect.provide(memoryEnv(
        [fd],
        (() => {
          let n = 0
          return () => Effect.succeed(status(n++ === 0 ? 503 : 200))
        })()
      ))
    ))

  it.effect("a drain alone still works unsliced and unpaused with its own settings (drainMailbox keeps its shape)", () =>
    Effect.gen(function*() {
      yield* enqueueNow([newPayload("jira_server:us:1")])
      const outbox = yield* Outbox.Outbox
      yield* outbox.claim({ owner: "w", now: 0, leaseMs: 30_000, limit: 1 })
      const r = yield* Delivery.drainMailbox("jira_server:us:1", "w")
      assert.deepStrictEqual([r.delivered, r.sliced, r.paused], [1, false, false])
    }).pipe(Effect.provide(memoryEnv([us]))))
})
