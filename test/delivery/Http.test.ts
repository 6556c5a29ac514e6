import { HttpRegionClient, Memory } from "@cellgate/adapters"
import type { Region, RegionDirectory } from "@cellgate/core"
import {
  Delivery,
  DeliverySettings,
  Directory,
  Enqueue,
  Gateway,
  IntegrationRepo,
  OrgRepo,
  Outbox,
  Provider,
  ProviderRegistry,
  RegionClient,
  RegionName,
  verifyForwarded,
  VolumeGate
} from "@cellgate/core"
import { assert, describe, it } from "@effect/vitest"
import { Clock, Effect, Exit, Layer, Random, Scope, TestClock } from "effect"
import * as Http from "node:http"
import type { AddressInfo } from "node:net"
import { drainDue, enqueueNow, makeRegion, newPayload, regionServer } from "./support.js"

const MIN = 60_000
const T0 = Date.parse("2026-03-01T12:00:00Z")

/** Memory outbox + directory of `regions` + the real HTTP region client. */
const httpEnv = (regions: ReadonlyArray<Region>) =>
  Layer.mergeAll(Memory.outboxLayer, Memory.directoryLayer(new Directory({ regions })), HttpRegionClient.layer)

/** Real time passes (the TestClock does not move): for waiting on sockets. */
const realSleep = (ms: number) => Effect.promise(() => new Promise<void>((resolve) => setTimeout(resolve, ms)))

const waitUntil = (check: () => boolean, ms = 3000) =>
  Effect.gen(function*() {
    for (let waited = 0; !check(); waited += 10) {
      if (waited > ms) return assert.fail("condition not met in time")
      yield* realSleep(10)
    }
  })

/** Drains until the outbox is empty, moving the clock an hour between rounds. */
const drainAll = Effect.gen(function*() {
  const outbox = yield* Outbox.Outbox
  for (let round = 0; round < 30; round++) {
    yield* drainDue("w")
    if ((yield* outbox.mailboxes).length === 0) return round
    yield* TestClock.adjust(60 * MIN)
  }
  return assert.fail("outbox not empty after 30 rounds")
})

const header = (h: Http.IncomingHttpHeaders, name: string) => h[name] as string | undefined

describe("delivery through real HTTP regions on 127.0.0.1", () => {
  it.scoped("503 for a while, then 200: all arrive in order, one delivery id each, attempts increasing", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(T0)
      const server = yield* regionServer((_, i) => ({ status: i < 4 ? 503 : 200 }))
      yield* withRegions(
        [makeRegion("us", server.url + "/region-base")],
        Effect.gen(function*() {
          const bodies = [new Uint8Array([0xff, 0x00, 0xfe, 0x0a]), "héllo", "{\"a\": 1}", "", "x".repeat(100_000)]
          const ps = bodies.map((body, i) =>
            newPayload("jira_server:us:1", { body, path: `/extensions/jira-server/issue-updated/t${i}/?q=${i}&r=%20` })
          )
          yield* enqueueNow(ps)
          yield* drainAll
          const got = server.received
          assert.strictEqual(got.length, 4 + ps.length)
          const ids = got.map((r) => header(r.headers, "x-cellgate-delivery-id")!)
          assert.deepStrictEqual([...new Set(ids)], ps.map((p) => p.deliveryId))
          assert.deepStrictEqual(got.slice(0, 5).map((r) => header(r.headers, "x-cellgate-attempt")), [
            "1",
            "2",
            "3",
            "4",
            "5"
          ])
          assert.isTrue(got.slice(5).every((r) => header(r.headers, "x-cellgate-attempt") === "1"))
          const delivered = got.slice(4)
          delivered.forEach((r, i) => {
            assert.strictEqual(r.method, "POST")
            assert.strictEqual(r.url, `/region-base${ps[i]!.path}`)
            assert.deepStrictEqual(r.body, ps[i]!.body)
            assert.strictEqual(header(r.headers, "content-length"), String(ps[i]!.body.length))
            assert.strictEqual(header(r.headers, "x-cellgate-mailbox"), "jira_server:us:1")
          })
        })
      )
    }).pipe(Effect.withRandom(Random.fixed([0.5]))))

  it.scoped("a region that does not answer times out (requestTimeoutMs) and is retried", () =>
    Effect.gen(function*() {
      const server = yield* regionServer((_, i) => (i === 0 ? "hang" : { status: 204 }))
      yield* withRegions(
        [makeRegion("us", server.url)],
        Effect.gen(function*() {
          yield* enqueueNow([newPayload("jira_server:us:1")])
          const started = Date.now()
          const [r] = yield* drainDue("w")
          assert.isBelow(Date.now() - started, 2000)
          assert.strictEqual(r!.retried, 1)
          const [p] = yield* Effect.flatMap(Outbox.Outbox, (o) => o.head("jira_server:us:1", 1))
          assert.match(p!.lastError!, /timed out/)
          yield* TestClock.adjust(10 * MIN)
          const [r2] = yield* drainDue("w")
          assert.strictEqual(r2!.delivered, 1)
          assert.strictEqual(server.received.length, 2)
        })
      )
    }).pipe(DeliverySettings.withSettings({ requestTimeoutMs: 250 })))

  it.scoped("404 → dead letter; replay after the fix → delivered with the same delivery id", () =>
    Effect.gen(function*() {
      let fixed = false
      const server = yield* regionServer(() => ({ status: fixed ? 200 : 404, body: "no such integration" }))
      yield* withRegions(
        [makeRegion("us", server.url)],
        Effect.gen(function*() {
          const outbox = yield* Outbox.Outbox
          const p = newPayload("jira_server:us:1")
          yield* enqueueNow([p])
          yield* drainDue("w")
          const [dead] = yield* outbox.deadLetters
          assert.strictEqual(dead!.lastStatus, 404)
          assert.strictEqual(dead!.lastBody, "no such integration")
          assert.strictEqual(dead!.reason, "permanent_failure")
          fixed = true
          assert.strictEqual(yield* outbox.replay("all", yield* Clock.currentTimeMillis), 1)
          const [r] = yield* drainDue("w")
          assert.strictEqual(r!.delivered, 1)
          assert.deepStrictEqual(yield* outbox.deadLetters, [])
          assert.deepStrictEqual(
            server.received.map((x) => header(x.headers, "x-cellgate-delivery-id")),
            [p.deliveryId, p.deliveryId]
          )
        })
      )
    }))

  it.scoped("signed when the region has a secret; verifyForwarded accepts it on the region side", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(T0)
      const secret = "whsec_" + Buffer.from("a 32 byte secret for the region!").toString("base64")
      const server = yield* regionServer(() => ({ status: 200 }))
      yield* withRegions(
        [makeRegion("us", server.url, secret)],
        Effect.gen(function*() {
          yield* enqueueNow([newPayload("jira_server:us:1", { body: "{\"signed\":true}" })])
          yield* drainDue("w")
          const [got] = server.received
          const ok = yield* Effect.promise(() =>
            verifyForwarded({ headers: got!.headers, body: got!.body }, secret, { nowSeconds: T0 / 1000 + 30 })
          )
          assert.isTrue(ok.ok)
          const tampered = yield* Effect.promise(() =>
            verifyForwarded({ headers: got!.headers, body: new TextEncoder().encode("{\"signed\":false}") }, secret, {
              nowSeconds: T0 / 1000
            })
          )
          assert.deepStrictEqual(tampered, { ok: false, reason: "bad_signature" })
        })
      )
    }))

  it.scoped("header rules end to end (gateway enqueue → worker → region): hop-by-hop and spoofed x-cellgate-* gone", () =>
    Effect.gen(function*() {
      const server = yield* regionServer(() => ({ status: 200 }))
      const region = makeRegion("us", server.url)
      yield* withRegions(
        [region],
        Effect.gen(function*() {
          const ctx = yield* Layer.build(Delivery.layerWith({ owner: "w1" }))
          const body = new TextEncoder().encode("{\"issue\":{}}")
          const gateway = yield* Gateway.make.pipe(Effect.provide(enqueueingPorts))
          const response = yield* gateway.handle(
            {
              method: "POST",
              path: "/extensions/jira-server/issue-updated/tok/?a=1",
              headers: {
                host: "gateway.example",
                "content-length": String(body.length),
                connection: "keep-alive, x-hop",
                "x-hop": "1",
                "keep-alive": "timeout=5",
                upgrade: "websocket",
                te: "trailers",
                "x-forwarded-proto": "https",
                "x-cellgate-delivery-id": "spoofed",
                "x-cellgate-attempt": "99",
                "x-cellgate-signature": "v1,spoofed",
                "content-type": "application/json",
                "x-atlassian-webhook-identifier": "abc"
              },
              body,
              receivedAt: yield* Clock.currentTimeMillis
            }
          ).pipe(
            Effect.provide(ctx)
          )
          assert.strictEqual(response.status, 202)
          // woken by the enqueue: no clock movement needed
          yield* waitUntil(() => server.received.length === 1)
          const h = server.received[0]!.headers
          assert.strictEqual(h["host"], new URL(server.url).host)
          assert.strictEqual(h["content-length"], String(body.length))
          assert.strictEqual(h["content-type"], "application/json")
          assert.strictEqual(h["x-atlassian-webhook-identifier"], "abc")
          for (
            const gone of ["x-hop", "upgrade", "te", "x-forwarded-proto", "transfer-encoding", "x-cellgate-signature"]
          ) {
            assert.isUndefined(h[gone], gone)
          }
          assert.notStrictEqual(h["x-cellgate-delivery-id"], "spoofed")
          assert.strictEqual(h["x-cellgate-attempt"], "1")
          assert.deepStrictEqual(server.received[0]!.body, body)
        })
      )
    }))
})

describe("HttpRegionClient", () => {
  const send = (url: string, path: string, timeoutMs = 2000) =>
    Effect.flatMap(
      RegionClient.RegionClient,
      (c) =>
        c.send(makeRegion("r", url), { method: "POST", path, headers: { "x-a": "1" }, body: new Uint8Array([1, 2]) }, {
          timeoutMs
        })
    )

  it.scoped("does not follow redirects; lower-cased headers; body bytes; keep-alive reuse", () =>
    Effect.gen(function*() {
      const sockets = new Set<unknown>()
      const server = yield* regionServer((r) =>
        r.url === "/moved"
          ? { status: 302, headers: { Location: "/elsewhere", "X-Region": "US" }, body: "moved" }
          : { status: 200, body: "ok" }
      )
      server.server.on("connection", (s) => sockets.add(s))
      const moved = yield* send(server.url, "/moved")
      assert.strictEqual(moved.status, 302)
      assert.strictEqual(moved.headers["location"], "/elsewhere")
      assert.strictEqual(moved.headers["x-region"], "US")
      assert.strictEqual(new TextDecoder().decode(moved.body), "moved")
      for (let i = 0; i < 5; i++) yield* send(server.url, `/ok?i=${i}`)
      assert.strictEqual(server.received.length, 6)
      assert.deepStrictEqual(server.received[0]!.body, new Uint8Array([1, 2]))
      assert.strictEqual(sockets.size, 1)
    }).pipe(Effect.provide(HttpRegionClient.layer)))

  it.scoped("timeout → kind timeout; refused and DNS failures → kind connection", () =>
    Effect.gen(function*() {
      const server = yield* regionServer(() => "hang")
      const slow = yield* Effect.flip(send(server.url, "/", 150))
      assert.strictEqual(slow.kind, "timeout")
      assert.strictEqual(slow.region, "r")
      const closed = yield* Effect.promise(() =>
        new Promise<number>((resolve) => {
          const s = Http.createServer()
          s.listen(0, "127.0.0.1", () => {
            const { port } = s.address() as AddressInfo
            s.close(() => resolve(port))
          })
        })
      )
      const refused = yield* Effect.flip(send(`http://127.0.0.1:${closed}`, "/"))
      assert.strictEqual(refused.kind, "connection")
      assert.match(refused.detail, /ECONNREFUSED/)
      const dns = yield* Effect.flip(send("http://no-such-host.invalid", "/"))
      assert.strictEqual(dns.kind, "connection")
    }).pipe(Effect.provide(HttpRegionClient.layer)))

  it.scoped("after the region closed an idle keep-alive connection, the next request still goes through", () =>
    Effect.gen(function*() {
      const server = yield* regionServer(() => ({ status: 200 }))
      server.server.keepAliveTimeout = 50
      yield* send(server.url, "/1")
      yield* realSleep(120) // the server closes the idle connection
      const r = yield* send(server.url, "/2")
      assert.strictEqual(r.status, 200)
    }).pipe(Effect.provide(HttpRegionClient.layer)))
})

describe("worker", () => {
  it.scoped("shutdown stops claiming and releases the leases it holds", () =>
    Effect.gen(function*() {
      const outbox = yield* Outbox.Outbox
      yield* enqueueNow([newPayload("jira_server:us:1"), newPayload("jira_server:us:2")])
      const scope = yield* Scope.make()
      yield* Effect.addFinalizer(() => Scope.close(scope, Exit.void))
      yield* Layer.buildWithScope(Delivery.layerWith({ owner: "w1" }), scope)
      yield* TestClock.adjust(1)
      yield* waitUntil(() => sends.count === 2)
      const leased = yield* outbox.mailboxes
      assert.deepStrictEqual(leased.map((m) => m.leasedBy), ["w1", "w1"])
      yield* Scope.close(scope, Exit.void)
      const after = yield* outbox.mailboxes
      assert.deepStrictEqual(after.map((m) => m.leasedBy), [null, null])
      assert.deepStrictEqual(after.map((m) => m.depth), [1, 1])
      // due again at once: another worker takes them
      const now = yield* Clock.currentTimeMillis
      assert.deepStrictEqual(
        (yield* outbox.claim({ owner: "w2", now, leaseMs: 30_000, limit: 10 })).map((c) => c.mailbox),
        ["jira_server:us:1", "jira_server:us:2"]
      )
    }).pipe(
      Effect.provide(
        Layer.mergeAll(
          Memory.outboxLayer,
          Memory.directoryLayer(new Directory({ regions: [makeRegion("us", "http://us.example")] })),
          Memory.recordingRegionClient(() => Effect.zipRight(Effect.sync(() => sends.count++), Effect.never))
        )
      ),
      Effect.ensuring(Effect.sync(() => (sends.count = 0)))
    ))

  it.scoped("drains at most `concurrency` mailboxes at once and claims no more than it can drain", () =>
    Effect.gen(function*() {
      const outbox = yield* Outbox.Outbox
      yield* enqueueNow([1, 2, 3, 4, 5].map((i) => newPayload(`jira_server:us:${i}`)))
      yield* Layer.build(Delivery.layerWith({ owner: "w1" }))
      yield* waitUntil(() => inFlight.count === 2)
      yield* realSleep(50)
      assert.strictEqual(inFlight.count, 2)
      const leased = (yield* outbox.mailboxes).filter((m) => m.leasedBy !== null)
      assert.strictEqual(leased.length, 2)
    }).pipe(
      DeliverySettings.withSettings({ concurrency: 2 }),
      Effect.provide(
        Layer.mergeAll(
          Memory.outboxLayer,
          Memory.directoryLayer(new Directory({ regions: [makeRegion("us", "http://us.example")] })),
          Memory.recordingRegionClient(() => Effect.zipRight(Effect.sync(() => inFlight.count++), Effect.never))
        )
      ),
      Effect.ensuring(Effect.sync(() => (inFlight.count = 0)))
    ))

  it.scoped("an enqueue wakes the worker of its own outbox at once, with no extra wiring (the clock never moves)", () =>
    Effect.gen(function*() {
      const server = yield* regionServer(() => ({ status: 200 }))
      yield* withRegions(
        [makeRegion("us", server.url)],
        Effect.gen(function*() {
          yield* Layer.build(Delivery.layer)
          yield* realSleep(20) // the worker is waiting now (its first claim found nothing)
          yield* enqueueNow([newPayload("jira_server:us:1")])
          yield* waitUntil(() => server.received.length === 1)
          // a second one while the worker is idle again
          yield* realSleep(20)
          yield* enqueueNow([newPayload("jira_server:us:2")])
          yield* waitUntil(() => server.received.length === 2)
        }).pipe(DeliverySettings.withSettings({ pollIntervalMs: 3_600_000 }))
      )
    }))

  it.scoped("polls: a mailbox that becomes due without an enqueue is picked up within pollIntervalMs", () =>
    Effect.gen(function*() {
      const server = yield* regionServer(() => ({ status: 200 }))
      yield* withRegions(
        [makeRegion("us", server.url)],
        Effect.gen(function*() {
          const outbox = yield* Outbox.Outbox
          const now = yield* Clock.currentTimeMillis
          yield* Layer.build(Delivery.layerWith({ owner: "w1" }))
          yield* realSleep(20)
          // due in 1 s: the enqueue's wake-up finds nothing due yet
          yield* outbox.enqueue([newPayload("jira_server:us:1", { receivedAt: now + 1_000 })])
          yield* realSleep(50)
          assert.strictEqual(server.received.length, 0)
          yield* TestClock.adjust(1_000)
          yield* waitUntil(() => server.received.length === 1)
        })
      )
    }))
})

// the gateway's ports for a provider that enqueues every `/extensions/jira-server/…` webhook to `jira_server:us:1`
const emptyDirectory = Directory.make({
  regions: [],
  organizations: [],
  integrations: [],
  organizationIntegrations: []
})
const enqueueingPorts = Layer.mergeAll(
  ProviderRegistry.layer([{
    name: "jira_server",
    routes: ["<anything>"],
    match: Provider.pathMatcher([["any", /^.*$/]]),
    route: () =>
      Effect.succeed({
        provider: "jira_server",
        decision: new Enqueue({
          provider: "jira_server",
          targets: [{ region: RegionName.make("us"), mailbox: "jira_server:us:1" }]
        }),
        reason: "enqueue",
        integration: null,
        organizations: [],
        regions: [RegionName.make("us")]
      })
  }]),
  IntegrationRepo.layerMemory(emptyDirectory),
  OrgRepo.layerMemory(emptyDirectory),
  VolumeGate.layerNoop
)

const sends = { count: 0 }
const inFlight = { count: 0 }

/** Runs `effect` against a memory outbox, the directory of `regions`, and the real HTTP client. */
function withRegions<A, E>(
  regions: ReadonlyArray<Region>,
  effect: Effect.Effect<A, E, Outbox.Outbox | RegionClient.RegionClient | RegionDirectory.RegionDirectory | Scope.Scope>
): Effect.Effect<A, E, Scope.Scope> {
  return effect.pipe(Effect.provide(httpEnv(regions)))
}
