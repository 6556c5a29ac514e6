/**
 * The adaptive per-region limit and the pauses of `Retry-After` through real HTTP (docs/routing.md#fair-adaptive-delivery):
 * node:http stub regions on 127.0.0.1 reached through `HttpRegionClient`, one worker, real time (the limit's damping
 * is in seconds).
 */
import { HttpRegionClient, Memory } from "@cellgate/adapters"
import type { Region } from "@cellgate/core"
import { Delivery, DeliverySettings, Directory, Metrics, Outbox, RegionClient } from "@cellgate/core"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Metric } from "effect"
import * as Http from "node:http"
import type { AddressInfo } from "node:net"
import { makeRegion, newPayload } from "./support.js"

const realSleep = (ms: number) => Effect.promise(() => new Promise<void>((resolve) => setTimeout(resolve, ms)))

const waitUntil = (check: () => boolean, ms: number) =>
  Effect.gen(function*() {
    for (let waited = 0; !check(); waited += 10) {
      if (waited > ms) return assert.fail("condition not met in time")
      yield* realSleep(10)
    }
  })

interface Arrival {
  readonly at: number
  readonly path: string
  readonly headers: Http.IncomingHttpHeaders
  /** Requests in flight at the region with this one. */
  readonly inFlight: number
  /** The highest `x-test-limit` among those requests (see `markingClient`). */
  readonly limitInFlight: number
}

/**
 * A region stub: `answer(arrival)` gives the status and headers of each request, sent after `delayMs`. Records every
 * arrival with the number of requests in flight at that moment.
 */
const stub = (
  answer: (arrival: Arrival) => { readonly status: number; readonly headers?: Record<string, string> },
  delayMs = 0
) =>
  Effect.acquireRelease(
    Effect.async<{ readonly url: string; readonly arrivals: Array<Arrival>; readonly server: Http.Server }>(
      (resume) => {
        const arrivals: Array<Arrival> = []
        const inFlight = new Set<Http.IncomingHttpHeaders>()
        const server = Http.createServer((req, res) => {
          inFlight.add(req.headers)
          const limits = [...inFlight].map((h) => Number(h["x-test-limit"] ?? Number.POSITIVE_INFINITY))
          const arrival: Arrival = {
            at: Date.now(),
            path: req.url ?? "",
            headers: req.headers,
            inFlight: inFlight.size,
            limitInFlight: Math.max(...limits)
          }
          arrivals.push(arrival)
          req.resume()
          req.on("end", () => {
            const { headers, status } = answer(arrival)
            setTimeout(() => {
              inFlight.delete(req.headers)
              res.writeHead(status, headers ?? {})
              res.end()
            }, delayMs)
          })
        })
        server.listen(0, "127.0.0.1", () => {
          const { port } = server.address() as AddressInfo
          resume(Effect.succeed({ url: `http://127.0.0.1:${port}`, arrivals, server }))
        })
      }
    ),
    ({ server }) =>
      Effect.async<void>((resume) => {
        server.closeAllConnections()
        server.close(() => resume(Effect.void))
      })
  )

/**
 * The real HTTP client, each request marked with the region's limit (the gauge) when it was sent: the region can then
 * check that what it has in flight never exceeds the limit of the latest of those requests.
 */
const markingClient = Layer.effect(
  RegionClient.RegionClient,
  Effect.map(RegionClient.RegionClient, (http) =>
    RegionClient.RegionClient.of({
      send: (region, request, options) =>
        Effect.flatMap(Metric.value(Metrics.regionConcurrency(region.name)), (gauge) =>
          http.send(
            region,
            { ...request, headers: { ...request.headers, "x-test-limit": String(gauge.value) } },
            options
          ))
    }))
).pipe(Layer.provide(HttpRegionClient.layer))

const env = (regions: ReadonlyArray<Region>) =>
  Layer.mergeAll(Memory.outboxLayer, Memory.directoryLayer(new Directory({ regions })), markingClient)

const fill = (region: string, mailboxes: number, each: number) =>
  Array.from(
    { length: mailboxes },
    (_, m) => Array.from({ length: each }, (_, i) => newPayload(`jira_server:${region}:${m}`, { path: `/m${m}/p${i}` }))
  ).flat()

/** Retries within milliseconds, so the test sees the whole backlog delivered. */
const quickRetries: Partial<DeliverySettings.Settings> = {
  backoffBaseMs: 20,
  backoffRate: 1,
  jitter: 0,
  maxAttempts: 100,
  pollIntervalMs: 20
}

/** 200 payloads over 40 mailboxes to a region that answers 503 whenever more than 4 requests are in flight. */
const overloaded = (region: string, adaptive: boolean) =>
  Effect.gen(function*() {
    const server = yield* stub((a) => ({ status: a.inFlight > 4 ? 503 : 200 }), 5)
    const ps = fill(region, 40, 5)
    const ok = () => server.arrivals.filter((a) => a.inFlight <= 4).length
    yield* Effect.gen(function*() {
      const outbox = yield* Outbox.Outbox
      yield* outbox.enqueue(ps.map((p) => ({ ...p, receivedAt: Date.now() })))
      yield* Layer.build(Delivery.layerWith({ owner: "w", settings: { ...quickRetries, adaptive } }))
      yield* waitUntil(() => ok() >= ps.length, 10_000)
    }).pipe(Effect.provide(env([makeRegion(region, server.url)])))
    const arrivals = server.arrivals
    return { arrivals, share503: (arrivals.length - ok()) / arrivals.length }
  })

describe("adaptive per-region concurrency through real HTTP", () => {
  it.scopedLive(
    "a region that answers 503 above 4 in flight: few 503s, and never more in flight than the limit",
    () =>
      Effect.gen(function*() {
        const adaptive = yield* overloaded("adapt1", true)
        const fixed = yield* overloaded("adapt2", false)
        // adaptive: the limit settles around what the region takes; fixed at concurrency (16): most requests are refused
        assert.isBelow(adaptive.share503, 0.15, `adaptive: ${adaptive.share503}`)
        assert.isAbove(fixed.share503, 0.3, `fixed: ${fixed.share503}`)
        // what the region has in flight is within the limit (the gauge) under which the latest of those requests was sent
        for (const a of adaptive.arrivals) assert.isAtMost(a.inFlight, a.limitInFlight, `at ${a.path}`)
        // without the gate, the region saw far more than 4 at once
        assert.isAbove(Math.max(...fixed.arrivals.map((a) => a.inFlight)), 8)
        const gauge = yield* Metric.value(Metrics.regionConcurrency("adapt1"))
        assert.isAtLeast(gauge.value, 1)
        assert.isAtMost(gauge.value, DeliverySettings.defaults.concurrency)
        // adaptive: false has no gate: the gauge is never set for that region
        assert.strictEqual((yield* Metric.value(Metrics.regionConcurrency("adapt2"))).value, 0)
      }),
    { timeout: 30_000 }
  )

  it.scopedLive(
    "503 with Retry-After: 2 pauses every mailbox of the region while another region keeps receiving",
    () =>
      Effect.gen(function*() {
        let pausedAt = 0
        const paused = yield* stub((a) => {
          if (pausedAt === 0) {
            pausedAt = a.at
            return { status: 503, headers: { "retry-after": "2" } }
          }
          return { status: 200 }
        })
        const other = yield* stub(() => ({ status: 200 }))
        const before = (yield* Metric.value(Metrics.regionPausedTotal("pause1"))).count
        const ps = fill("pause1", 5, 3)
        yield* Effect.gen(function*() {
          const outbox = yield* Outbox.Outbox
          yield* outbox.enqueue(ps.map((p) => ({ ...p, receivedAt: Date.now() })))
          yield* Layer.build(
            Delivery.layerWith({ owner: "w", settings: { backoffBaseMs: 100, jitter: 0, pollIntervalMs: 50 } })
          )
          yield* waitUntil(() => pausedAt > 0, 2_000)
          // during the pause, another region's webhooks go at once
          yield* realSleep(300)
          yield* outbox.enqueue(fill("pause2", 2, 2).map((p) => ({ ...p, receivedAt: Date.now() })))
          yield* waitUntil(() => other.arrivals.length === 4, 1_000)
          assert.isBelow(other.arrivals.at(-1)!.at - pausedAt, 1_500)
          yield* waitUntil(() => paused.arrivals.length === ps.length + 1, 5_000)
        }).pipe(
          Effect.provide(env([makeRegion("pause1", paused.url), makeRegion("pause2", other.url)]))
        )
        // the requests already in flight with the first (limit 4) arrived with it; then nothing for 2 s
        const later = paused.arrivals.filter((a) => a.at > pausedAt + 100)
        assert.isAbove(later.length, 0)
        for (const a of later) assert.isAtLeast(a.at - pausedAt, 1_900, a.path)
        assert.strictEqual((yield* Metric.value(Metrics.regionPausedTotal("pause1"))).count - before, 1)
        // the payload that was answered 503 is sent again with the same sequence number and the next attempt
        const first = paused.arrivals[0]!
        const again = paused.arrivals.filter((a) => a.path === first.path)
        assert.deepStrictEqual(again.map((a) => [a.headers["x-cellgate-sequence"], a.headers["x-cellgate-attempt"]]), [
          [first.headers["x-cellgate-sequence"], "1"],
          [first.headers["x-cellgate-sequence"], "2"]
        ])
      }),
    { timeout: 30_000 }
  )
})
