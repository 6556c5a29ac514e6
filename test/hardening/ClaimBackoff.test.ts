// The claim loop while the store is down (issue #10, item 6): claims that fail with StoreUnavailable back off
// exponentially (0.5 s doubling, capped at 5 s) instead of retrying every poll interval, the outage is logged once per
// interval with a count (never once per failed claim, never with a stack trace), and the loop goes back to its poll
// interval by itself at the first claim that succeeds. The delay rule and the log throttle are also checked as
// properties over generated inputs.
import { Memory } from "@cellgate/adapters"
import { Delivery, DeliverySettings, Directory, Outbox, StoreOutage, StoreUnavailable } from "@cellgate/core"
import { assert, describe, it } from "@effect/vitest"
import { Cause, Clock, Effect, FastCheck as fc, Fiber, Layer, Logger, TestClock } from "effect"

const POLL_MS = 100

interface LogLine {
  readonly level: string
  readonly message: unknown
  readonly cause: boolean
}

/** An outbox whose first `failing` claims fail with `StoreUnavailable`; records when each claim was made. */
const flakyOutbox = (failing: number, claims: Array<number>) =>
  Layer.effect(
    Outbox.Outbox,
    Effect.map(Outbox.Outbox, (outbox) =>
      Outbox.Outbox.of({
        ...outbox,
        claim: (options) =>
          Effect.flatMap(Clock.currentTimeMillis, (now) => {
            claims.push(now)
            return claims.length <= failing
              ? Effect.fail(
                new StoreUnavailable({ operation: "claim", cause: new Error("connect ECONNREFUSED 127.0.0.1:5432") })
              )
              : outbox.claim(options)
          })
      }))
  ).pipe(Layer.provide(Memory.outboxLayer))

const runFor = (failing: number, ms: number) =>
  Effect.gen(function*() {
    const claims: Array<number> = []
    const lines: Array<LogLine> = []
    const logger = Logger.make<unknown, void>(({ cause, logLevel, message }) => {
      lines.push({ level: logLevel.label, message, cause: !Cause.isEmpty(cause) })
    })
    const env = Layer.mergeAll(
      flakyOutbox(failing, claims),
      Memory.recordingRegionClient(),
      Memory.directoryLayer(new Directory({})),
      Logger.replace(Logger.defaultLogger, logger)
    )
    const fiber = yield* Delivery.run({ owner: "w" }).pipe(
      DeliverySettings.withSettings({ pollIntervalMs: POLL_MS }),
      // a throttle of this test's own (the default one is shared by the whole process)
      Effect.provideService(StoreOutage.OutageLog, StoreOutage.makeThrottle()),
      Effect.provide(env),
      Effect.fork
    )
    yield* TestClock.adjust(ms)
    yield* Fiber.interrupt(fiber)
    const gaps = claims.slice(1).map((t, i) => t - claims[i]!)
    return { claims, gaps, lines }
  })

describe("the claim loop while the store is down", () => {
  it.effect("backs off 0.5, 1, 2, 4, 5, 5 s while claims fail, then polls again by itself", () =>
    Effect.gen(function*() {
      const { gaps, lines } = yield* runFor(7, 23_000)
      // 7 failed claims at 0, 0.5, 1.5, 3.5, 7.5, 12.5, 17.5 s; the 8th (22.5 s) succeeds; then every poll interval
      assert.deepStrictEqual(gaps.slice(0, 7), [500, 1000, 2000, 4000, 5000, 5000, 5000])
      assert.isTrue(gaps.length >= 10)
      assert.isTrue(gaps.slice(7).every((g) => g === POLL_MS), `after recovery: ${gaps.slice(7).join(",")}`)
      const outage = lines.filter((l) => Array.isArray(l.message) && l.message[0] === "store unavailable")
      // one line at the first failure, then one per 5 s interval with the count since the previous line
      assert.deepStrictEqual(outage.map((l) => (l.message as Array<any>)[1].count), [1, 4, 1, 1])
      assert.isTrue(outage.every((l) => l.level === "WARN" && !l.cause))
      assert.deepStrictEqual(lines.filter((l) => l.level === "ERROR"), [])
    }))

  it.effect("never backs off while claims succeed", () =>
    Effect.gen(function*() {
      const { gaps, lines } = yield* runFor(0, 2_000)
      assert.isTrue(gaps.length >= 15)
      assert.isTrue(gaps.every((g) => g === POLL_MS))
      assert.isFalse(lines.some((l) => Array.isArray(l.message) && l.message[0] === "store unavailable"))
    }))

  it.prop(
    "claimRetryDelay grows with the failures, is capped, and is never below the poll interval",
    [fc.integer({ min: 1, max: 200 }), fc.integer({ min: 1, max: 20_000 })],
    ([failures, poll]) => {
      const delay = StoreOutage.claimRetryDelay(failures, poll)
      const next = StoreOutage.claimRetryDelay(failures + 1, poll)
      assert.isTrue(next >= delay)
      assert.isTrue(delay >= poll)
      assert.isTrue(delay <= Math.max(poll, StoreOutage.CLAIM_BACKOFF_MAX_MS))
      assert.strictEqual(
        delay,
        Math.max(
          poll,
          Math.min(StoreOutage.CLAIM_BACKOFF_MAX_MS, StoreOutage.CLAIM_BACKOFF_BASE_MS * 2 ** (failures - 1))
        )
      )
      assert.strictEqual(StoreOutage.claimRetryDelay(0, poll), poll)
    },
    { fastCheck: { numRuns: 500 } }
  )

  it.prop(
    "the outage log: at most one line per interval, and the counts add up to the errors",
    [fc.array(fc.integer({ min: 0, max: 2_000 }), { minLength: 1, maxLength: 400 })],
    ([steps]) => {
      const throttle = StoreOutage.makeThrottle(5_000)
      let now = 0
      const lines: Array<{ at: number; count: number; index: number }> = []
      steps.forEach((step, index) => {
        now += step
        const line = throttle.report(new StoreUnavailable({ operation: "enqueue" }), now)
        if (line !== undefined) lines.push({ at: now, count: line.count, index })
      })
      assert.strictEqual(lines[0]!.at, steps[0])
      for (let i = 1; i < lines.length; i++) assert.isTrue(lines[i]!.at - lines[i - 1]!.at >= 5_000)
      assert.isTrue(lines.length <= Math.floor((now - steps[0]!) / 5_000) + 1)
      // each line counts the errors since the previous line, itself included; those after the last line wait for
      // the next one
      lines.forEach((l, i) => assert.strictEqual(l.count, l.index - (i === 0 ? -1 : lines[i - 1]!.index)))
    },
    { fastCheck: { numRuns: 300 } }
  )
})
