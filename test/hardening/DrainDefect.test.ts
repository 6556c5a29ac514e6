// Issue 10 item 7: a defect while delivering one payload (here: a region secret that is not base64, so signing
// throws) is an attempt of that payload like any other failure — retried with backoff and dead-lettered after
// `maxAttempts` — never a mailbox released without counting, which would fail forever (until `maxAgeMs`, 3 days).
// The directory is built directly (validation bypassed), as a store written before the secret check could be.
import { Memory } from "@cellgate/adapters"
import { Delivery, DeliverySettings, Directory, Outbox, Region, RegionName } from "@cellgate/core"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Layer, Redacted, TestClock } from "effect"
import { newPayload } from "../delivery/support.js"

const BAD_SECRET = "whsec_this is not base64!"

const badRegion = new Region({
  name: RegionName.make("us"),
  url: "http://us.example",
  secret: Redacted.make(BAD_SECRET)
}, { disableValidation: true })

const env = Layer.mergeAll(
  Memory.outboxLayer,
  Memory.directoryLayer(new Directory({ regions: [badRegion] }, { disableValidation: true })),
  Memory.recordingRegionClient()
)

const settings = {
  maxAttempts: 4,
  backoffBaseMs: 1_000,
  backoffRate: 2,
  backoffMaxMs: 10_000,
  jitter: 0,
  pollIntervalMs: 1_000
}

describe("a defect while delivering counts as an attempt", () => {
  it.effect("the worker dead-letters a payload whose region secret cannot sign, after maxAttempts", () =>
    Effect.gen(function*() {
      const outbox = yield* Outbox.Outbox
      const p = newPayload("jira_server:us:1")
      yield* outbox.enqueue([{ ...p, receivedAt: 0 }])
      const worker = yield* Effect.fork(Delivery.run({ owner: "w" }))
      // 4 attempts at 1 s, 2 s, 4 s, 8 s of backoff: well within 40 s (maxAgeMs is three days)
      for (let i = 0; i < 40; i++) yield* TestClock.adjust(1_000)
      yield* Fiber.interrupt(worker)

      const dead = yield* outbox.deadLetters
      assert.strictEqual(dead.length, 1)
      assert.strictEqual(dead[0]!.deliveryId, p.deliveryId)
      assert.strictEqual(dead[0]!.reason, "max_attempts")
      assert.strictEqual(dead[0]!.attempts, settings.maxAttempts - 1)
      assert.strictEqual(dead[0]!.lastError, Delivery.DEFECT_ERROR)
      assert.notInclude(JSON.stringify(dead[0]), "not base64")
      assert.deepStrictEqual(yield* outbox.head("jira_server:us:1", 10), [])
      // nothing was sent: signing failed before the request
      assert.deepStrictEqual(yield* Effect.flatMap(Memory.RegionRecorder, (r) => r.sent), [])
    }).pipe(Effect.provide(env), DeliverySettings.withSettings(settings)))

  it.effect("drainMailbox records the defect as a retry with backoff, and never fails or dies", () =>
    Effect.gen(function*() {
      const outbox = yield* Outbox.Outbox
      const p = newPayload("jira_server:us:2")
      yield* outbox.enqueue([{ ...p, receivedAt: 0 }])
      const [claimed] = yield* outbox.claim({ owner: "w", now: 0, leaseMs: 30_000, limit: 10 })
      const result = yield* Delivery.drainMailbox(claimed!.mailbox, "w")
      assert.strictEqual(result.retried, 1)
      assert.strictEqual(result.sent, 0)
      const [waiting] = yield* outbox.head("jira_server:us:2", 10)
      assert.strictEqual(waiting!.attempts, 1)
      assert.strictEqual(waiting!.lastError, Delivery.DEFECT_ERROR)
      assert.strictEqual(result.nextDue, waiting!.nextAttemptAt)
      // backoffDelay(1) = base × rate¹ = 2 s
      assert.strictEqual(waiting!.nextAttemptAt, 2_000)
    }).pipe(Effect.provide(env), DeliverySettings.withSettings(settings)))
})
