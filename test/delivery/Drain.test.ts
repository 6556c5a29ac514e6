import { Memory } from "@cellgate/adapters"
import { Delivery, DeliverySettings, Metrics, Outbox, RegionTransportError } from "@cellgate/core"
import { assert, describe, it } from "@effect/vitest"
import { Clock, Effect, Fiber, Layer, Metric, Random, TestClock } from "effect"
import { drainDue, enqueueNow, makeRegion, memoryEnv, newPayload, status } from "./support.js"

const us = makeRegion("us", "http://us.example")
const MIN = 60_000

const sentPaths = Effect.map(
  Effect.flatMap(Memory.RegionRecorder, (r) => r.sent),
  (sent) => sent.map((s) => s.request.path)
)

const payloadsOf = (mailbox: string) => Effect.flatMap(Outbox.Outbox, (o) => o.head(mailbox, 1000))

const relaxedCount = Effect.map(
  Metric.value(Metrics.orderingRelaxedTotal("skip_on_failure")),
  (s) => s.count
)

describe("drainMailbox (TestClock, fixed Random)", () => {
  it.effect("backoff sequence 4.2, 5.88, 8.23 … minutes, then dead letter after maxAttempts sends", () =>
    Effect.gen(function*() {
      const p = newPayload("jira_server:us:1")
      yield* enqueueNow([p])
      const dues: Array<number> = []
      for (let i = 0; i < 10; i++) {
        const [r] = yield* drainDue("w")
        assert.strictEqual(r!.sent, 1)
        const rest = yield* payloadsOf("jira_server:us:1")
        if (i < 9) {
          assert.strictEqual(rest[0]!.attempts, i + 1)
          const now = yield* Clock.currentTimeMillis
          dues.push((rest[0]!.nextAttemptAt - now) / MIN)
          assert.strictEqual(r!.nextDue, rest[0]!.nextAttemptAt)
          // one ms early: not claimable
          yield* TestClock.adjust(rest[0]!.nextAttemptAt - now - 1)
          assert.deepStrictEqual(yield* drainDue("w"), [])
          yield* TestClock.adjust(1)
        } else {
          assert.strictEqual(rest.length, 0)
          assert.strictEqual(r!.deadLettered, 1)
        }
      }
      const expected = [4.2, 5.88, 8.232, 11.5248, 16.13472, 22.588608, 31.6240512, 44.27367168, 60]
      dues.forEach((m, i) => assert.approximately(m, expected[i]!, 1e-4))
      const dead = yield* Effect.flatMap(Outbox.Outbox, (o) => o.deadLetters)
      assert.strictEqual(dead.length, 1)
      assert.strictEqual(dead[0]!.reason, "max_attempts")
      assert.strictEqual(dead[0]!.lastStatus, 503)
      assert.strictEqual(dead[0]!.deliveryId, p.deliveryId)
      const sent = yield* Effect.flatMap(Memory.RegionRecorder, (r) => r.sent)
      assert.deepStrictEqual(sent.map((s) => s.request.headers["x-cellgate-attempt"]), [
        "1",
        "2",
        "3",
        "4",
        "5",
        "6",
        "7",
        "8",
        "9",
        "10"
      ])
      assert.isTrue(sent.every((s) => s.request.headers["x-cellgate-delivery-id"] === p.deliveryId))
      assert.isTrue(sent.every((s) => s.request.headers["x-cellgate-mailbox"] === "jira_server:us:1"))
    }).pipe(
      Effect.withRandom(Random.fixed([0.5])),
      Effect.provide(memoryEnv([us], () => Effect.succeed(status(503))))
    ))

  it.effect("jitter: the random factor comes from Effect's Random", () =>
    Effect.gen(function*() {
      yield* enqueueNow([newPayload("jira_server:us:1"), newPayload("jira_server:us:2")])
      yield* drainDue("w")
      const [a] = yield* payloadsOf("jira_server:us:1")
      const [b] = yield* payloadsOf("jira_server:us:2")
      // attempts = 1 → 252 000 ms, × 0.9 (random 0) and × 1.1 (random 1)
      assert.strictEqual(a!.nextAttemptAt, 226_800)
      assert.strictEqual(b!.nextAttemptAt, 277_200)
    }).pipe(
      Effect.withRandom(Random.fixed([0, 1])),
      Effect.provide(memoryEnv([us], () => Effect.succeed(status(500))))
    ))

  it.effect("Retry-After replaces a shorter backoff (seconds and HTTP date), capped at retryAfterMaxMs", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(Date.parse("2026-03-01T12:00:00Z"))
      const now = yield* Clock.currentTimeMillis
      const cases: Array<[string, number]> = [
        ["1800", 30 * MIN], // longer than 4.2 min: used
        ["10", 4.2 * MIN], // shorter: the backoff
        ["7200", 40 * MIN], // capped (retryAfterMaxMs 40 min here)
        ["Sun, 01 Mar 2026 12:20:00 GMT", 20 * MIN],
        ["Sun, 01 Mar 2026 15:00:00 GMT", 40 * MIN]
      ]
      yield* enqueueNow(cases.map(([ra], i) => newPayload(`jira_server:us:${i}`, { headers: { "x-ra": ra } })))
      yield* drainDue("w")
      for (let i = 0; i < cases.length; i++) {
        const [p] = yield* payloadsOf(`jira_server:us:${i}`)
        assert.strictEqual(p!.nextAttemptAt - now, cases[i]![1], cases[i]![0])
      }
    }).pipe(
      Effect.withRandom(Random.fixed([0.5])),
      Effect.provide(
        Layer.merge(
          memoryEnv([us], (_, req) => Effect.succeed(status(429, { "retry-after": req.headers["x-ra"]! }))),
          DeliverySettings.layer({ retryAfterMaxMs: 40 * MIN })
        )
      )
    ))

  it.effect("a payload older than maxAgeMs is dead-lettered without being sent", () =>
    Effect.gen(function*() {
      yield* enqueueNow([newPayload("jira_server:us:1")])
      // sends at t = 0 and 10 min fail; at 20 min (due since 15.88) it is older than the 15 min max age
      for (let i = 0; i < 5; i++) {
        yield* drainDue("w")
        yield* TestClock.adjust(10 * MIN)
      }
      assert.strictEqual((yield* sentPaths).length, 2)
      const dead = yield* Effect.flatMap(Outbox.Outbox, (o) => o.deadLetters)
      assert.strictEqual(dead.length, 1)
      assert.strictEqual(dead[0]!.reason, "max_age")
      assert.strictEqual(dead[0]!.lastBody, "HTTP 502")
    }).pipe(
      Effect.withRandom(Random.fixed([0.5])),
      Effect.provide(
        Layer.merge(
          memoryEnv([us], () => Effect.succeed(status(502))),
          DeliverySettings.layer({ maxAgeMs: 15 * MIN })
        )
      )
    ))

  it.effect("a payload that already used maxAttempts is dead-lettered without being sent", () =>
    Effect.gen(function*() {
      yield* enqueueNow([newPayload("jira_server:us:1")])
      yield* drainDue("w") // 1 send, attempts 1
      yield* TestClock.adjust(10 * MIN)
      // the operator lowers maxAttempts to 1
      yield* drainDue("w").pipe(DeliverySettings.withSettings({ maxAttempts: 1 }))
      assert.strictEqual((yield* sentPaths).length, 1)
      const dead = yield* Effect.flatMap(Outbox.Outbox, (o) => o.deadLetters)
      assert.strictEqual(dead[0]!.reason, "max_attempts")
    }).pipe(Effect.provide(memoryEnv([us], () => Effect.succeed(status(503))))))

  it.effect("permanent failures (400, 401, 403, 404, 409) dead-letter at once with status and body", () =>
    Effect.gen(function*() {
      const codes = [400, 401, 403, 404, 409]
      yield* enqueueNow(codes.map((c) => newPayload(`jira_server:us:${c}`, { headers: { "x-code": String(c) } })))
      const results = yield* drainDue("w")
      assert.isTrue(results.every((r) => r.deadLettered === 1 && r.sent === 1))
      const dead = yield* Effect.flatMap(Outbox.Outbox, (o) => o.deadLetters)
      assert.deepStrictEqual(dead.map((d) => d.lastStatus).sort(), codes)
      assert.isTrue(dead.every((d) => d.reason === "permanent_failure" && d.lastBody === "nope"))
      assert.deepStrictEqual(yield* Effect.flatMap(Outbox.Outbox, (o) => o.mailboxes), [])
    }).pipe(
      Effect.provide(memoryEnv([us], (_, req) => Effect.succeed(status(Number(req.headers["x-code"]), {}, "nope"))))
    ))

  it.effect("transport errors and unknown regions are retried", () =>
    Effect.gen(function*() {
      yield* enqueueNow([newPayload("jira_server:us:1"), newPayload("jira_server:gone:1")])
      const results = yield* drainDue("w")
      assert.isTrue(results.every((r) => r.retried === 1 && r.deadLettered === 0))
      const [a] = yield* payloadsOf("jira_server:us:1")
      const [b] = yield* payloadsOf("jira_server:gone:1")
      assert.match(a!.lastError!, /timed out us: boom/)
      assert.match(b!.lastError!, /not in the directory/)
      assert.strictEqual((yield* sentPaths).length, 1)
    }).pipe(
      Effect.provide(
        memoryEnv([us], () => Effect.fail(new RegionTransportError({ region: "us", kind: "timeout", detail: "boom" })))
      )
    ))

  it.effect("strict mailbox: stops at a failed head; later payloads wait", () =>
    Effect.gen(function*() {
      const ps = [1, 2, 3].map((i) => newPayload("jira_server:us:7", { path: `/p${i}` }))
      yield* enqueueNow(ps)
      const before = yield* relaxedCount
      yield* drainDue("w")
      assert.deepStrictEqual(yield* sentPaths, ["/p1"])
      yield* TestClock.adjust(5 * MIN)
      yield* drainDue("w")
      assert.deepStrictEqual(yield* sentPaths, ["/p1", "/p1", "/p2", "/p3"])
      assert.strictEqual((yield* payloadsOf("jira_server:us:7")).length, 0)
      assert.strictEqual(yield* relaxedCount, before)
    }).pipe(
      Effect.provide(memoryEnv([us], failFirst("/p1", 1)))
    ))

  it.effect("skip-on-failure (github): goes past a failed head, counts each skip, honours each payload's own due time", () =>
    Effect.gen(function*() {
      const m = "github:us:1:42"
      yield* enqueueNow([1, 2, 3].map((i) => newPayload(m, { path: `/p${i}` })))
      const before = yield* relaxedCount
      const [r] = yield* drainDue("w")
      assert.deepStrictEqual(yield* sentPaths, ["/p1", "/p2", "/p3"])
      assert.strictEqual(r!.skipped, 2)
      assert.strictEqual((yield* relaxedCount) - before, 2)
      // p1 waits for its Retry-After (60 min); the mailbox is looked at again after SKIP_RECHECK_MS
      assert.strictEqual(r!.nextDue, Delivery.SKIP_RECHECK_MS)
      yield* enqueueNow([newPayload(m, { path: "/p4" })])
      assert.deepStrictEqual(yield* drainDue("w"), [])
      yield* TestClock.adjust(Delivery.SKIP_RECHECK_MS)
      const [r2] = yield* drainDue("w")
      assert.strictEqual(r2!.delivered, 1)
      assert.deepStrictEqual(yield* sentPaths, ["/p1", "/p2", "/p3", "/p4"]) // p1 not due: not sent
      assert.strictEqual((yield* relaxedCount) - before, 3)
      yield* TestClock.adjust(60 * MIN)
      const [r3] = yield* drainDue("w")
      assert.strictEqual(r3!.delivered, 1)
      assert.deepStrictEqual(yield* sentPaths, ["/p1", "/p2", "/p3", "/p4", "/p1"])
      assert.deepStrictEqual(yield* Effect.flatMap(Outbox.Outbox, (o) => o.mailboxes), [])
    }).pipe(
      Effect.provide(memoryEnv([us], failFirst("/p1", 1, { "retry-after": "3600" })))
    ))

  it.effect("skip-on-failure: a payload not yet due is passed over, not sent", () =>
    Effect.gen(function*() {
      const m = "github:us:1"
      yield* enqueueNow([1, 2].map((i) => newPayload(m, { path: `/p${i}` })))
      yield* drainDue("w") // p1 → retry in 60 min (Retry-After); p2 → retry in 4.2 min
      const [p1, p2] = yield* payloadsOf(m)
      assert.strictEqual(p1!.nextAttemptAt, 60 * MIN)
      assert.strictEqual(p2!.nextAttemptAt, 4.2 * MIN)
      yield* TestClock.adjust(4.2 * MIN)
      const [r] = yield* drainDue("w")
      assert.deepStrictEqual(yield* sentPaths, ["/p1", "/p2", "/p2"])
      assert.strictEqual(r!.delivered, 1)
      assert.strictEqual(r!.nextDue, 4.2 * MIN + Delivery.SKIP_RECHECK_MS)
    }).pipe(
      Effect.withRandom(Random.fixed([0.5])),
      Effect.provide(
        memoryEnv([us], (_, req) =>
          Effect.gen(function*() {
            const n = yield* Clock.currentTimeMillis
            if (req.path === "/p1") return status(503, { "retry-after": "3600" })
            return n === 0 ? status(503) : status(200)
          }))
      )
    ))

  it.effect("lease expiry hand-over: A's lease runs out mid-send, B takes over, A's write is refused", () =>
    Effect.gen(function*() {
      const m = "jira_server:us:9"
      const ps = [1, 2].map((i) => newPayload(m, { path: `/p${i}` }))
      yield* enqueueNow(ps)
      const outbox = yield* Outbox.Outbox
      const claimedA = yield* outbox.claim({ owner: "A", now: 0, leaseMs: 30_000, limit: 10 })
      assert.deepStrictEqual(claimedA.map((c) => c.mailbox), [m])
      const a = yield* Effect.fork(Delivery.drainMailbox(m, "A"))
      yield* TestClock.adjust(29_999)
      assert.deepStrictEqual(yield* drainDue("B"), []) // still leased to A
      yield* TestClock.adjust(2) // A's lease has run out (A is still waiting on its slow request)
      const [b] = yield* drainDue("B")
      assert.strictEqual(b!.delivered, 2)
      yield* TestClock.adjust(20_000) // A's request finally answers 200
      const ra = yield* Fiber.join(a)
      assert.isTrue(ra.leaseLost)
      assert.strictEqual(ra.delivered, 0)
      assert.strictEqual(ra.sent, 1)
      const sent = yield* Effect.flatMap(Memory.RegionRecorder, (r) => r.sent)
      // at-least-once: p1 went twice, with the same delivery id; p2 only once (A stopped)
      assert.deepStrictEqual(sent.map((s) => s.request.headers["x-cellgate-delivery-id"]), [
        ps[0]!.deliveryId,
        ps[0]!.deliveryId,
        ps[1]!.deliveryId
      ])
      assert.deepStrictEqual(yield* outbox.mailboxes, [])
    }).pipe(
      Effect.provide(
        Layer.merge(
          memoryEnv([us], slowFirst(50_000)),
          DeliverySettings.layer({ requestTimeoutMs: 60_000 })
        )
      )
    ))

  it.effect("metrics: deliveries by outcome and region, delivery seconds, outbox gauges", () =>
    Effect.gen(function*() {
      const count = (outcome: string) =>
        Effect.map(Metric.value(Metrics.deliveriesTotal("mx", outcome)), (s) => s.count)
      yield* enqueueNow([
        newPayload("jira_server:mx:1", { path: "/ok" }),
        newPayload("jira_server:mx:2", { path: "/retry" }),
        newPayload("jira_server:mx:3", { path: "/dead" })
      ])
      yield* TestClock.adjust(90_000)
      yield* Delivery.updateOutboxGauges()
      assert.strictEqual((yield* Metric.value(Metrics.outboxDepth("mx"))).value, 3)
      assert.strictEqual((yield* Metric.value(Metrics.outboxOldestAgeSeconds("mx"))).value, 90)
      yield* drainDue("w")
      assert.deepStrictEqual([yield* count("ok"), yield* count("retry"), yield* count("dead_letter")], [1, 1, 1])
      assert.strictEqual((yield* Metric.value(Metrics.deliverySeconds("mx"))).count, 3)
      yield* Delivery.updateOutboxGauges()
      assert.strictEqual((yield* Metric.value(Metrics.outboxDepth("mx"))).value, 1)
      assert.strictEqual((yield* Metric.value(Metrics.outboxDepth("us"))).value, 0)
    }).pipe(
      Effect.provide(
        memoryEnv(
          [makeRegion("mx", "http://mx.example"), us],
          (_, req) => Effect.succeed(status(req.path === "/ok" ? 200 : req.path === "/dead" ? 409 : 500))
        )
      )
    ))

  it.effect("renews the lease while working through a long mailbox", () =>
    Effect.gen(function*() {
      const m = "jira_server:us:5"
      yield* enqueueNow([1, 2, 3, 4, 5].map((i) => newPayload(m, { path: `/p${i}` })))
      const outbox = yield* Outbox.Outbox
      yield* outbox.claim({ owner: "A", now: 0, leaseMs: 30_000, limit: 10 })
      const a = yield* Effect.fork(Delivery.drainMailbox(m, "A"))
      // each request takes 11 s: 55 s in all, well past one 30 s lease
      for (let i = 0; i < 5; i++) {
        yield* TestClock.adjust(11_000)
        assert.deepStrictEqual(
          yield* outbox.claim({ owner: "B", now: yield* Clock.currentTimeMillis, leaseMs: 30_000, limit: 10 }),
          []
        )
      }
      const r = yield* Fiber.join(a)
      assert.strictEqual(r.delivered, 5)
      assert.isFalse(r.leaseLost)
    }).pipe(
      Effect.provide(memoryEnv([us], () => Effect.as(Effect.sleep(11_000), status(204))))
    ))
})

/** The first send takes `ms`, the others answer at once; all 200. */
const slowFirst = (ms: number) => {
  let count = 0
  return () => count++ === 0 ? Effect.as(Effect.sleep(ms), status(200)) : Effect.succeed(status(200))
}

/** Fails `path` for its first `n` sends (503 + `headers`), answers 200 otherwise. */
const failFirst = (path: string, n: number, headers: Record<string, string> = {}) => {
  let seen = 0
  return (_: unknown, req: { readonly path: string }) => {
    if (req.path === path && seen++ < n) return Effect.succeed(status(503, headers))
    return Effect.succeed(status(200))
  }
}
