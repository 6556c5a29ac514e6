import { DeliveryPolicy, DeliverySettings } from "@cellgate/core"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Either, FastCheck as fc, Option, Schema } from "effect"

const d = DeliverySettings.defaults

describe("DeliveryPolicy pieces and DeliverySettings", () => {
  it("defaults are those of the configuration file's documentation", () => {
    assert.deepStrictEqual(d, {
      pollIntervalMs: 500,
      requestTimeoutMs: 12000,
      maxAttempts: 10,
      backoffBaseMs: 180000,
      backoffRate: 1.4,
      backoffMaxMs: 3600000,
      jitter: 0.1,
      retryAfterMaxMs: 3600000,
      maxAgeMs: 259200000,
      skipOnFailureProviders: ["github"],
      concurrency: 16,
      leaseMs: 30000,
      claimBatch: 32,
      maxAnswerBytes: 1048576,
      fairShare: 2,
      drainSlice: 32,
      regionConcurrency: 4,
      adaptive: true
    })
  })

  it("backoff without jitter: 4.2, 5.88, 8.23 … minutes, capped at 60", () => {
    const minutes = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10].map((n) => DeliveryPolicy.backoffDelay(n, d, 0.5) / 60_000)
    const expected = [4.2, 5.88, 8.232, 11.5248, 16.13472, 22.588608, 31.6240512, 44.27367168, 60, 60]
    minutes.forEach((m, i) => assert.approximately(m, expected[i]!, 1e-3))
  })

  it.prop(
    "jitter stays within [1 − jitter, 1 + jitter] of the capped backoff",
    [
      fc.integer({ min: 0, max: 40 }),
      fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
      fc.double({ min: 0, max: 0.9, noNaN: true })
    ],
    ([attempts, random, jitter]) => {
      const s = { ...d, jitter }
      const base = Math.min(s.backoffBaseMs * Math.pow(s.backoffRate, attempts), s.backoffMaxMs)
      const delay = DeliveryPolicy.backoffDelay(attempts, s, random)
      return delay >= Math.floor(base * (1 - jitter)) && delay <= Math.ceil(base * (1 + jitter))
    },
    { fastCheck: { numRuns: 500 } }
  )

  it("Retry-After: seconds, HTTP dates (three formats), past dates and garbage", () => {
    const now = Date.parse("2026-03-01T12:00:00Z")
    assert.deepStrictEqual(DeliveryPolicy.parseRetryAfter("120", now), Option.some(120_000))
    assert.deepStrictEqual(DeliveryPolicy.parseRetryAfter(" 0 ", now), Option.some(0))
    assert.deepStrictEqual(DeliveryPolicy.parseRetryAfter("Sun, 01 Mar 2026 12:30:00 GMT", now), Option.some(1_800_000))
    assert.deepStrictEqual(
      DeliveryPolicy.parseRetryAfter("Sunday, 01-Mar-26 12:30:00 GMT", now),
      Option.some(1_800_000)
    )
    assert.deepStrictEqual(DeliveryPolicy.parseRetryAfter("Sun Mar  1 12:30:00 2026", now).pipe(Option.isSome), true)
    assert.deepStrictEqual(DeliveryPolicy.parseRetryAfter("Sun, 01 Mar 2026 11:00:00 GMT", now), Option.some(0))
    assert.deepStrictEqual(DeliveryPolicy.parseRetryAfter(undefined, now), Option.none())
    assert.deepStrictEqual(DeliveryPolicy.parseRetryAfter("5.5", now), Option.none())
    assert.deepStrictEqual(DeliveryPolicy.parseRetryAfter("-3", now), Option.none())
    assert.deepStrictEqual(DeliveryPolicy.parseRetryAfter("soon", now), Option.none())
  })

  it("answerClass: 2xx ok; 400/401/403/404/409 permanent; every other status retryable", () => {
    for (const s of [200, 201, 202, 204, 299]) assert.strictEqual(DeliveryPolicy.answerClass(s), "ok")
    for (const s of [400, 401, 403, 404, 409]) assert.strictEqual(DeliveryPolicy.answerClass(s), "permanent")
    for (const s of [100, 301, 302, 304, 307, 308, 402, 405, 408, 410, 413, 422, 429, 500, 502, 503, 504, 599]) {
      assert.strictEqual(DeliveryPolicy.answerClass(s), "retryable", String(s))
    }
  })

  it("the settings schema: {} decodes to the defaults, a bad value is refused with its key", () => {
    assert.deepStrictEqual(Schema.decodeUnknownSync(DeliverySettings.Settings)({}), d)
    assert.deepStrictEqual(
      Schema.decodeUnknownSync(DeliverySettings.Settings)({ maxAttempts: 3 }),
      { ...d, maxAttempts: 3 }
    )
    const bad = Schema.decodeUnknownEither(DeliverySettings.Settings)({ jitter: 2 })
    assert.isTrue(Either.isLeft(bad))
    if (Either.isLeft(bad)) assert.include(String(bad.left.message), "jitter")
  })

  it.effect("layer and withSettings: the given keys over the defaults / over the settings in use", () =>
    Effect.gen(function*() {
      assert.deepStrictEqual(yield* DeliverySettings.DeliverySettings, { ...d, leaseMs: 1_000 })
      const inner = yield* DeliverySettings.DeliverySettings.pipe(DeliverySettings.withSettings({ concurrency: 2 }))
      assert.deepStrictEqual(inner, { ...d, leaseMs: 1_000, concurrency: 2 })
    }).pipe(Effect.provide(DeliverySettings.layer({ leaseMs: 1_000 }))))

  it.effect("without a layer the settings are the defaults", () =>
    Effect.map(DeliverySettings.DeliverySettings, (s) => assert.deepStrictEqual(s, d)))

  it("truncateBody keeps the start of the answer", () => {
    const long = new TextEncoder().encode("é".repeat(5000))
    const t = DeliveryPolicy.truncateBody(long, 100)
    assert.strictEqual(t, "é".repeat(100) + "…")
    assert.strictEqual(DeliveryPolicy.truncateBody(new TextEncoder().encode("not found")), "not found")
  })
})
