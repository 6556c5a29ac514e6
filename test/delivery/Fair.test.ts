/**
 * Tenant-fair claims in the worker (docs/routing.md#fair-adaptive-delivery): the worker counts what it holds of each
 * tenant across claims and passes it to every claim, so a quiet tenant's webhook is not queued behind a noisy
 * tenant's backlog. Memory outbox, a recording region client whose answers take TestClock time.
 */
import { Memory } from "@cellgate/adapters"
import type { DeliverySettings, RegionClient } from "@cellgate/core"
import { Delivery, Directory, Outbox } from "@cellgate/core"
import { assert, describe, it } from "@effect/vitest"
import { Clock, Deferred, Effect, Exit, Layer, TestClock } from "effect"
import { makeRegion, newPayload, status } from "./support.js"

const us = makeRegion("us", "http://us.example")
const NOISY = "i:1"
const QUIET = "i:2"

interface Send {
  readonly at: number
  readonly path: string
}

/** Memory outbox, directory, and a client that answers 200 after `delayMs(path)` of TestClock time, recording each send. */
const env = (sends: Array<Send>, delayMs: (path: string) => number) =>
  Layer.mergeAll(
    Memory.outboxLayer,
    Memory.directoryLayer(new Directory({ regions: [us] })),
    Memory.recordingRegionClient((_, request: RegionClient.OutgoingRequest) =>
      Effect.gen(function*() {
        sends.push({ at: yield* Clock.currentTimeMillis, path: request.path })
        yield* Effect.sleep(delayMs(request.path))
        return status(200)
      })
    )
  )

const payload = (mailbox: string, tenant: string, path: string) => ({ ...newPayload(mailbox, { path }), tenant })

/** Moves the clock in steps until `done` (at most `maxSteps` steps). */
const runUntil = (done: () => boolean, stepMs: number, maxSteps: number) =>
  Effect.gen(function*() {
    for (let i = 0; i < maxSteps && !done(); i++) yield* TestClock.adjust(stepMs)
    assert.isTrue(done(), "not done in time")
  })

/**
 * 100 noisy mailboxes × 20 payloads, then (1 ms later) one quiet payload, all delivered by one worker whose region
 * answers at once; returns how many noisy payloads were sent before the quiet one.
 */
const noisyAndQuiet = (overrides: Partial<DeliverySettings.Settings>) =>
  Effect.gen(function*() {
    const outbox = yield* Outbox.Outbox
    const paths: Array<string> = []
    const all = yield* Deferred.make<void>()
    const noisy = Array.from({ length: 100 }, (_, m) =>
      Array.from({ length: 20 }, (_, i) => payload(`jira_server:us:n${m}`, NOISY, `/noisy/${m}/${i}`))).flat()
    yield* outbox.enqueue(noisy)
    yield* TestClock.adjust(1)
    yield* outbox.enqueue([{ ...payload("jira_server:us:q", QUIET, "/quiet"), receivedAt: 1 }])
    yield* Layer.build(Delivery.layerWith({ owner: "w", settings: overrides })).pipe(
      Effect.provide(Memory.recordingRegionClient((_, request) =>
        Effect.sync(() => {
          paths.push(request.path)
          if (paths.length === noisy.length + 1) {
            Deferred.unsafeDone(all, Exit.void)
          }
          return status(200)
        })
      ))
    )
    // woken by the enqueues and by drains ending: the clock never has to move
    yield* Deferred.await(all)
    return paths.indexOf("/quiet")
  }).pipe(Effect.provide(Layer.merge(Memory.outboxLayer, Memory.directoryLayer(new Directory({ regions: [us] })))))

describe("tenant-fair claims in the worker", () => {
  it.effect("defaults (fairShare 2, drainSlice 32): the quiet payload goes before the noisy backlog is half done", () =>
    Effect.gen(function*() {
      const noisyBefore = yield* Effect.scoped(noisyAndQuiet({}))
      assert.isBelow(noisyBefore, 1000)
      // in the first claim: at most the other 15 drains of that claim went before it
      assert.isAtMost(noisyBefore, 15 * 20)
    }))

  it.effect("fairShare 0, drainSlice 0 (the first wave): the quiet payload waits behind the noisy backlog", () =>
    Effect.gen(function*() {
      const noisyBefore = yield* Effect.scoped(noisyAndQuiet({ fairShare: 0, drainSlice: 0 }))
      assert.isAbove(noisyBefore, 1000)
      // claimed after all 100 noisy mailboxes: at least 84 of them (100 − 16 drain slots) were drained before
      assert.isAtLeast(noisyBefore, 84 * 20)
    }))

  it.scoped("holdings count across claims: with 4 noisy mailboxes held, the first free slot goes to the quiet tenant", () =>
    Effect.gen(function*() {
      const sends: Array<Send> = []
      const run = (fairShare: number) =>
        Effect.gen(function*() {
          sends.length = 0
          const outbox = yield* Outbox.Outbox
          // n0 answers after 100 ms, n1 after 200 ms, …: slots free one at a time
          yield* outbox.enqueue(
            Array.from({ length: 10 }, (_, m) => payload(`jira_server:us:n${m}`, NOISY, `/noisy/${m}`))
          )
          yield* Layer.build(Delivery.layerWith({ owner: "w", settings: { concurrency: 4, fairShare } }))
          yield* TestClock.adjust(10)
          assert.deepStrictEqual(sends.map((s) => s.path), ["/noisy/0", "/noisy/1", "/noisy/2", "/noisy/3"])
          yield* outbox.enqueue([{ ...payload("jira_server:us:q", QUIET, "/quiet"), receivedAt: 10 }])
          yield* runUntil(() => sends.length === 11, 10, 500)
          // the fifth send: the first one after a slot freed
          return sends[4]!.path
        }).pipe(Effect.provide(env(sends, (path) => path === "/quiet" ? 1 : 100 * (Number(path.split("/")[2]) + 1))))
      // held (4 of i:1) puts i:1's candidates past its share of 2: the quiet tenant's mailbox goes first
      assert.strictEqual(yield* Effect.scoped(run(2)), "/quiet")
      // no fairness: oldest due first, the noisy backlog
      assert.strictEqual(yield* Effect.scoped(run(0)), "/noisy/4")
    }))

  it.scoped("what the worker passes to claim: fairShare and what it holds, given back when each drain ends", () =>
    Effect.gen(function*() {
      const seen: Array<{ readonly fairShare: number | undefined; readonly held: Record<string, number> }> = []
      const memory = Outbox.makeMemory()
      const spy = Outbox.Outbox.of({
        ...memory,
        claim: (options) => {
          seen.push({ fairShare: options.fairShare, held: Object.fromEntries(options.held ?? new Map()) })
          return memory.claim(options)
        }
      })
      const sends: Array<Send> = []
      yield* Effect.gen(function*() {
        yield* memory.enqueue([
          payload("jira_server:us:a1", NOISY, "/a1"),
          payload("jira_server:us:a2", NOISY, "/a2"),
          payload("jira_server:us:b1", QUIET, "/b1")
        ])
        yield* Layer.build(Delivery.layerWith({ owner: "w", settings: { fairShare: 3 } }))
        yield* TestClock.adjust(50)
        // an enqueue wakes the worker: it claims again while it holds all three
        yield* memory.enqueue([{ ...payload("jira_server:us:c1", "i:3", "/c1"), receivedAt: 50 }])
        yield* runUntil(() => sends.length === 4, 100, 50)
        yield* TestClock.adjust(1_000)
      }).pipe(
        Effect.provide(Layer.mergeAll(
          Layer.succeed(Outbox.Outbox, spy),
          Memory.directoryLayer(new Directory({ regions: [us] })),
          Memory.recordingRegionClient((_, request) =>
            Effect.gen(function*() {
              sends.push({ at: yield* Clock.currentTimeMillis, path: request.path })
              yield* Effect.sleep(request.path === "/b1" ? 100 : 500)
              return status(200)
            })
          )
        ))
      )
      assert.isTrue(seen.every((c) => c.fairShare === 3))
      assert.deepStrictEqual(seen[0]!.held, {})
      // while the three drains run, the worker's claims carry what it holds of each tenant
      assert.isTrue(seen.some((c) => c.held[NOISY] === 2 && c.held[QUIET] === 1 && c.held["i:3"] === undefined))
      assert.isTrue(seen.some((c) => c.held[NOISY] === 2 && c.held[QUIET] === undefined))
      // all drains over: nothing held
      assert.deepStrictEqual(seen.at(-1)!.held, {})
    }))
})
