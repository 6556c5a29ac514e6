/**
 * `DeliveryPolicy.decide` alone, with generated answers, attempts, clocks, settings and random numbers: no outbox, no
 * region, no fiber.
 */
import { DeliveryPolicy, DeliverySettings } from "@cellgate/core"
import { assert, describe, it } from "@effect/vitest"
import { FastCheck as fc } from "effect"

const { Answer, decide, expired } = DeliveryPolicy

const PERMANENT = [400, 401, 403, 404, 409]

const settingsArb = fc.record({
  maxAttempts: fc.integer({ min: 1, max: 30 }),
  maxAgeMs: fc.integer({ min: 1, max: 10 * 86_400_000 }),
  backoffBaseMs: fc.integer({ min: 0, max: 600_000 }),
  backoffRate: fc.double({ min: 1, max: 3, noNaN: true }),
  backoffMaxMs: fc.integer({ min: 0, max: 7_200_000 }),
  jitter: fc.double({ min: 0, max: 1, noNaN: true }),
  retryAfterMaxMs: fc.integer({ min: 0, max: 7_200_000 })
})

const statusArb = fc.oneof(
  fc.integer({ min: 200, max: 299 }),
  fc.constantFrom(...PERMANENT),
  fc.integer({ min: 100, max: 599 })
)

/** `Retry-After` values: delay-seconds, HTTP dates, garbage, or none. */
const retryAfterArb = fc.option(
  fc.oneof(
    fc.integer({ min: 0, max: 20_000 }).map(String),
    fc.integer({ min: -7_200, max: 20_000 }).map((s) => new Date(T0 + s * 1000).toUTCString()),
    fc.constantFrom("soon", "-3", "5.5", "")
  ),
  { nil: undefined }
)

const T0 = Date.parse("2026-03-01T12:00:00Z")

const answerArb = fc.oneof(
  fc.record({ status: statusArb, retryAfter: retryAfterArb, body: fc.string({ maxLength: 40 }) }).map((
    { body, retryAfter, status }
  ) =>
    Answer.Answered({
      response: {
        status,
        headers: retryAfter === undefined ? {} : { "retry-after": retryAfter },
        body: new TextEncoder().encode(body)
      }
    })
  ),
  fc.string({ minLength: 1, maxLength: 40 }).map((error) => Answer.NoAnswer({ error }))
)

const caseArb = fc.record({
  settings: settingsArb,
  answer: answerArb,
  attempts: fc.integer({ min: 0, max: 40 }),
  age: fc.integer({ min: 0, max: 12 * 86_400_000 }),
  random: fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true })
})

const statusOf = (answer: DeliveryPolicy.Answer) => answer._tag === "Answered" ? answer.response.status : null

describe("DeliveryPolicy.decide (generated answers, attempts, clocks)", () => {
  it.prop("2xx completes, whatever the attempts and the age", [caseArb], ([c]) => {
    const status = statusOf(c.answer)
    if (status === null || status < 200 || status >= 300) return true
    const d = decide({ attempts: c.attempts, receivedAt: T0 - c.age }, c.answer, T0, c.settings, c.random)
    assert.strictEqual(d._tag, "Complete")
    return true
  }, { fastCheck: { numRuns: 300 } })

  it.prop("a permanent status dead-letters at once, with the status and the start of the body", [caseArb], ([c]) => {
    const status = statusOf(c.answer)
    if (status === null || !PERMANENT.includes(status)) return true
    const d = decide({ attempts: 0, receivedAt: T0 - c.age }, c.answer, T0, c.settings, c.random)
    assert.strictEqual(d._tag, "DeadLetter")
    if (d._tag === "DeadLetter" && c.answer._tag === "Answered") {
      assert.strictEqual(d.reason, "permanent_failure")
      assert.strictEqual(d.lastStatus, status)
      assert.strictEqual(d.lastBody, DeliveryPolicy.truncateBody(c.answer.response.body))
    }
    return true
  }, { fastCheck: { numRuns: 300 } })

  it.prop(
    "a failure dead-letters exactly when the counted attempt reaches maxAttempts or the payload is older than maxAgeMs",
    [caseArb],
    ([c]) => {
      const status = statusOf(c.answer)
      if (status !== null && DeliveryPolicy.answerClass(status) !== "retryable") return true
      const d = decide({ attempts: c.attempts, receivedAt: T0 - c.age }, c.answer, T0, c.settings, c.random)
      const exhausted = c.attempts + 1 >= c.settings.maxAttempts
      const tooOld = c.age > c.settings.maxAgeMs
      if (exhausted || tooOld) {
        assert.strictEqual(d._tag, "DeadLetter")
        if (d._tag === "DeadLetter") {
          assert.strictEqual(d.reason, exhausted ? "max_attempts" : "max_age")
          assert.strictEqual(d.lastStatus, status)
        }
      } else {
        assert.strictEqual(d._tag, "Retry")
        if (d._tag === "Retry") {
          assert.strictEqual(d.attempts, c.attempts + 1)
          assert.strictEqual(d.nextAttemptAt, T0 + d.delayMs)
          assert.strictEqual(d.error, status === null ? (c.answer as { error: string }).error : `HTTP ${status}`)
        }
      }
      return true
    },
    { fastCheck: { numRuns: 500 } }
  )

  it.prop(
    "a retry waits the backoff (within the jitter bounds, ≤ backoffMaxMs × (1 + jitter)), or a longer Retry-After capped by retryAfterMaxMs",
    [caseArb],
    ([c]) => {
      const d = decide({ attempts: c.attempts, receivedAt: T0 - c.age }, c.answer, T0, c.settings, c.random)
      if (d._tag !== "Retry") return true
      const s = c.settings
      const capped = Math.min(s.backoffBaseMs * Math.pow(s.backoffRate, d.attempts), s.backoffMaxMs)
      const low = Math.floor(capped * (1 - s.jitter))
      const high = Math.ceil(capped * (1 + s.jitter))
      const backoff = DeliveryPolicy.backoffDelay(d.attempts, s, c.random)
      assert.isAtLeast(backoff, low)
      assert.isAtMost(backoff, high)
      assert.isAtMost(backoff, Math.ceil(s.backoffMaxMs * (1 + s.jitter)))
      if (s.jitter === 0) assert.isAtMost(backoff, s.backoffMaxMs)
      const header = c.answer._tag === "Answered" ? c.answer.response.headers["retry-after"] : undefined
      const asked = DeliveryPolicy.parseRetryAfter(typeof header === "string" ? header : undefined, T0)
      if (asked._tag === "None") assert.strictEqual(d.delayMs, backoff)
      else {
        // Retry-After never shortens the backoff and never goes past its cap
        assert.strictEqual(d.delayMs, Math.max(backoff, Math.min(asked.value, s.retryAfterMaxMs)))
        assert.isAtMost(d.delayMs, Math.max(backoff, s.retryAfterMaxMs))
      }
      assert.isAtLeast(d.delayMs, 0)
      return true
    },
    { fastCheck: { numRuns: 500 } }
  )

  it.prop("pure: the same arguments give the same decision", [caseArb], ([c]) => {
    const p = { attempts: c.attempts, receivedAt: T0 - c.age }
    assert.deepStrictEqual(decide(p, c.answer, T0, c.settings, c.random), decide(p, c.answer, T0, c.settings, c.random))
    return true
  })

  it("the defaults: a 503 on the first attempt retries after 4.2 minutes (random 0.5); the tenth dead-letters", () => {
    const d = DeliverySettings.defaults
    const answer = Answer.Answered({ response: { status: 503, headers: {}, body: new Uint8Array(0) } })
    const first = decide({ attempts: 0, receivedAt: T0 }, answer, T0, d, 0.5)
    assert.deepStrictEqual(
      first,
      DeliveryPolicy.Decision.Retry({
        nextAttemptAt: T0 + 252_000,
        delayMs: 252_000,
        attempts: 1,
        error: "HTTP 503"
      })
    )
    const tenth = decide({ attempts: 9, receivedAt: T0 }, answer, T0, d, 0.5)
    assert.deepStrictEqual(
      tenth,
      DeliveryPolicy.Decision.DeadLetter({ reason: "max_attempts", lastStatus: 503, lastBody: "" })
    )
  })
})

describe("DeliveryPolicy.expired (before sending)", () => {
  it.prop(
    "a payload may no longer be sent exactly when it already used maxAttempts or is older than maxAgeMs",
    [settingsArb, fc.integer({ min: 0, max: 40 }), fc.integer({ min: 0, max: 12 * 86_400_000 })],
    ([settings, attempts, age]) => {
      const late = expired({ attempts, receivedAt: T0 - age, lastError: "HTTP 502" }, T0, settings)
      const exhausted = attempts >= settings.maxAttempts
      const tooOld = age > settings.maxAgeMs
      assert.strictEqual(late._tag === "Some", exhausted || tooOld)
      if (late._tag === "Some") {
        assert.deepStrictEqual(
          late.value,
          DeliveryPolicy.Decision.DeadLetter({
            reason: exhausted ? "max_attempts" : "max_age",
            lastStatus: null,
            lastBody: "HTTP 502"
          })
        )
      }
      return true
    },
    { fastCheck: { numRuns: 300 } }
  )
})
