/**
 * Random interleavings of enqueue, claim + drain, delivery outcomes, lease expiry (a worker that claims and dies, a
 * request slow enough for the lease to pass to another worker) and restarts (new owners), against the memory outbox:
 * (memory and SQLite) every acknowledged payload ends delivered or dead-lettered exactly once, and in strict mailboxes no payload is sent
 * before every earlier payload of its mailbox was delivered or dead-lettered.
 *
 * Time is a hand-moved `Clock` (the drain only reads the time; its one sleep, the guard on a client that ignores its
 * timeout, never fires here): `TestClock.adjust` costs a few ms per call, which would make 150 runs slow.
 */
import { Memory } from "@cellgate/adapters"
import * as Sqlite from "@cellgate/adapters/Sqlite"
import {
  Delivery,
  DeliverySettings,
  Directory,
  Outbox,
  RegionClient,
  RegionDirectory,
  RegionTransportError
} from "@cellgate/core"
import { assert, describe, it } from "@effect/vitest"
import type { Scope } from "effect"
import { Clock, Context, Effect, FastCheck as fc, Layer } from "effect"
import { makeRegion, newPayload, status } from "./support.js"

const MAILBOXES = ["jira_server:us:1", "jira_server:us:2", "gitlab:eu:3", "github:us:1:7", "github:eu:2"]
const strict = (m: string) => !m.startsWith("github:")

type Answer = "ok" | "503" | "429" | "404" | "timeout"
type Op =
  | { readonly _tag: "enqueue"; readonly mailbox: number; readonly count: number }
  | { readonly _tag: "drain" }
  | { readonly _tag: "crash"; readonly limit: number }
  | { readonly _tag: "restart" }
  | { readonly _tag: "advance"; readonly ms: number }
  | { readonly _tag: "slowNext" }

const answerArb: fc.Arbitrary<Answer> = fc.constantFrom("ok", "ok", "ok", "503", "429", "404", "timeout")
const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    arbitrary: fc.record({
      _tag: fc.constant("enqueue" as const),
      mailbox: fc.integer({ min: 0, max: MAILBOXES.length - 1 }),
      count: fc.integer({ min: 1, max: 3 })
    }),
    weight: 4
  },
  { arbitrary: fc.constant({ _tag: "drain" as const }), weight: 4 },
  { arbitrary: fc.record({ _tag: fc.constant("crash" as const), limit: fc.integer({ min: 1, max: 5 }) }), weight: 1 },
  { arbitrary: fc.constant({ _tag: "restart" as const }), weight: 1 },
  {
    arbitrary: fc.record({ _tag: fc.constant("advance" as const), ms: fc.integer({ min: 0, max: 40_000 }) }),
    weight: 3
  },
  { arbitrary: fc.constant({ _tag: "slowNext" as const }), weight: 1 }
)

const settings = DeliverySettings.layer({
  backoffBaseMs: 1000,
  backoffRate: 2,
  backoffMaxMs: 8000,
  retryAfterMaxMs: 10_000,
  maxAttempts: 4,
  leaseMs: 30_000,
  requestTimeoutMs: 60_000
})

type Event =
  | { readonly _tag: "send"; readonly deliveryId: string; readonly mailbox: string }
  | { readonly _tag: "resolved"; readonly deliveryId: string; readonly how: "complete" | "dead" }

/** Records which payload each successful `complete` / `deadLetter` resolved. */
const recordingOutbox = (base: Outbox.Outbox["Type"], events: Array<Event>): Outbox.Outbox["Type"] => {
  const deliveryIdOf = (mailbox: string, id: number) =>
    Effect.map(base.head(mailbox, 10_000), (ps) => ps.find((p) => p.id === id)?.deliveryId ?? "?")
  return Outbox.Outbox.of({
    ...base,
    complete: (lease, id) =>
      Effect.flatMap(
        deliveryIdOf(lease.mailbox, id),
        (deliveryId) =>
          Effect.tap(base.complete(lease, id), () => events.push({ _tag: "resolved", deliveryId, how: "complete" }))
      ),
    deadLetter: (lease, id, options) =>
      Effect.flatMap(
        deliveryIdOf(lease.mailbox, id),
        (deliveryId) =>
          Effect.tap(base.deadLetter(lease, id, options), () =>
            events.push({ _tag: "resolved", deliveryId, how: "dead" }))
      )
  })
}

/** A clock that moves only when told to. */
const manualClock = () => {
  let t = 0
  const clock: Clock.Clock = {
    [Clock.ClockTypeId]: Clock.ClockTypeId,
    unsafeCurrentTimeMillis: () => t,
    currentTimeMillis: Effect.sync(() => t),
    unsafeCurrentTimeNanos: () => BigInt(t) * 1_000_000n,
    currentTimeNanos: Effect.sync(() => BigInt(t) * 1_000_000n),
    sleep: () => Effect.never
  }
  return { clock, advance: (ms: number) => Effect.sync(() => void (t += ms)) }
}

const run =
  (makeOutbox: Effect.Effect<Outbox.Outbox["Type"], never, Scope.Scope>) =>
  ({ ops, script }: { ops: Array<Op>; script: Array<Answer> }) => {
    const time = manualClock()
    return Effect.gen(function*() {
      const events: Array<Event> = []
      const enqueued: Array<Outbox.NewPayload> = []
      const outbox = recordingOutbox(yield* makeOutbox, events)
      const directory = Context.get(
        yield* Layer.build(
          Memory.directoryLayer(
            new Directory({ regions: [makeRegion("us", "http://us.example"), makeRegion("eu", "http://eu.example")] })
          )
        ).pipe(Effect.scoped),
        RegionDirectory.RegionDirectory
      )
      let answers = 0
      let slowPending = false
      let owners = 0
      let owner = `w${owners}`

      // one claim + drain round of a worker
      const round = (who: string): Effect.Effect<void> =>
        Effect.gen(function*() {
          const now = yield* Clock.currentTimeMillis
          const claimed = yield* Effect.orDie(outbox.claim({ owner: who, now, leaseMs: 30_000, limit: 100 }))
          yield* Effect.forEach(claimed, (c) => Delivery.drainMailbox(c.mailbox, who), { discard: true })
        }).pipe(provideAll)

      const client = RegionClient.RegionClient.of({
        send: (region, request) =>
          Effect.gen(function*() {
            events.push({
              _tag: "send",
              deliveryId: request.headers["x-cellgate-delivery-id"]!,
              mailbox: request.headers["x-cellgate-mailbox"]!
            })
            if (slowPending) {
              // this request outlives the lease: another worker claims the mailbox meanwhile
              slowPending = false
              yield* time.advance(30_001)
              yield* round(`w${++owners}`)
            }
            const a = script[answers++ % script.length]!
            switch (a) {
              case "ok":
                return status(200)
              case "503":
                return status(503)
              case "429":
                return status(429, { "retry-after": "5" })
              case "404":
                return status(404)
              case "timeout":
                return yield* new RegionTransportError({ region: region.name, kind: "timeout", detail: "slow" })
            }
          }) as Effect.Effect<RegionClient.RegionResponse, RegionTransportError>
      })

      function provideAll<A, E, R>(effect: Effect.Effect<A, E, R>) {
        return effect.pipe(
          Effect.provideService(Outbox.Outbox, outbox),
          Effect.provideService(RegionClient.RegionClient, client),
          Effect.provideService(RegionDirectory.RegionDirectory, directory),
          Effect.provide(settings)
        )
      }

      for (const op of ops) {
        switch (op._tag) {
          case "enqueue": {
            const now = yield* Clock.currentTimeMillis
            const ps = Array.from({ length: op.count }, () => newPayload(MAILBOXES[op.mailbox]!, { receivedAt: now }))
            yield* Effect.orDie(outbox.enqueue(ps))
            enqueued.push(...ps)
            break
          }
          case "drain":
            yield* round(owner)
            break
          case "crash": {
            const now = yield* Clock.currentTimeMillis
            yield* Effect.orDie(outbox.claim({ owner, now, leaseMs: 30_000, limit: op.limit }))
            owner = `w${++owners}`
            break
          }
          case "restart":
            owner = `w${++owners}`
            break
          case "advance":
            yield* time.advance(op.ms)
            break
          case "slowNext":
            slowPending = true
            break
        }
      }
      // then workers keep going until nothing is left
      slowPending = false
      for (let i = 0; i < 60 && (yield* Effect.orDie(outbox.mailboxes)).length > 0; i++) {
        yield* time.advance(31_000)
        yield* round(`final${i}`)
      }

      // every acknowledged payload is delivered or dead-lettered, exactly once
      assert.deepStrictEqual(yield* Effect.orDie(outbox.mailboxes), [])
      const resolved = events.filter((e) => e._tag === "resolved")
      assert.deepStrictEqual(resolved.map((e) => e.deliveryId).sort(), enqueued.map((p) => p.deliveryId).sort())
      const dead = yield* Effect.orDie(outbox.deadLetters)
      assert.deepStrictEqual(
        dead.map((d) => d.deliveryId).sort(),
        resolved.filter((e) => e.how === "dead").map((e) => e.deliveryId).sort()
      )

      // strict mailboxes: a payload is sent only once every earlier payload of its mailbox is resolved
      const done = new Set<string>()
      const orderOf = new Map(enqueued.map((p, i) => [p.deliveryId, i]))
      for (const e of events) {
        if (e._tag === "resolved") {
          done.add(e.deliveryId)
          continue
        }
        if (!strict(e.mailbox)) continue
        const index = orderOf.get(e.deliveryId)!
        for (const earlier of enqueued.slice(0, index)) {
          if (earlier.mailbox === e.mailbox && !done.has(earlier.deliveryId)) {
            assert.fail(`${e.deliveryId} sent before ${earlier.deliveryId} of ${e.mailbox} was resolved`)
          }
        }
      }
    }).pipe(Effect.withClock(time.clock), Effect.scoped)
  }

describe("delivery property", () => {
  it.effect.prop(
    "memory outbox: at-least-once, resolved exactly once, strict order of first deliveries",
    {
      ops: fc.array(opArb, { minLength: 1, maxLength: 30 }),
      script: fc.array(answerArb, { minLength: 1, maxLength: 12 })
    },
    run(Effect.sync(Memory.makeOutbox)),
    { fastCheck: { numRuns: 100 } }
  )

  it.effect.prop(
    "SQLite outbox (:memory:): the same",
    {
      ops: fc.array(opArb, { minLength: 1, maxLength: 30 }),
      script: fc.array(answerArb, { minLength: 1, maxLength: 12 })
    },
    run(
      Layer.build(Sqlite.layer({ path: ":memory:" })).pipe(
        Effect.map((ctx) => Context.get(ctx, Outbox.Outbox)),
        Effect.orDie
      )
    ),
    { fastCheck: { numRuns: 100 } }
  )
})
