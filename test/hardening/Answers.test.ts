// Issue #10, items 8 and 10: a region's answer is read up to `delivery.maxAnswerBytes` and never buffered whole (a
// relayed answer over it is 502 `answer_too_large`, a delivery keeps only the start it stores, both counted in
// `cellgate_truncated_total{kind}`), and repeated answer headers (two `Set-Cookie`) stay separate end to end:
// region → HttpRegionClient → relayed WebhookResponse → the sender.
import { HttpRegionClient, Memory } from "@cellgate/adapters"
import type { RegionName } from "@cellgate/core"
import {
  DeliverySettings,
  Directory,
  Forward,
  Metrics,
  Outbox,
  Provider,
  Providers,
  RegionClient
} from "@cellgate/core"
import type { EmbeddedServer } from "@cellgate/http"
import { makeServer } from "@cellgate/http"
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { Effect, Layer, Metric } from "effect"
import * as Http from "node:http"
import type { AddressInfo } from "node:net"
import { drainDue, enqueueNow, makeRegion, newPayload } from "../delivery/support.js"
import { call } from "../support/Http.js"

const CAP = 64 * 1024
const CHUNK = Buffer.alloc(16 * 1024, "x")

/**
 * A region that answers `status` with a body that never ends (until the client goes away, or 512 MB): it records
 * how much it wrote and whether the connection was closed under it. Other paths get two `Set-Cookie` headers.
 */
const startRegion = async (status: number) => {
  const stats = { written: 0, closed: 0, requests: 0 }
  const server = Http.createServer((req, res) => {
    stats.requests++
    req.resume()
    if (req.url?.includes("cookies") === true) {
      res.writeHead(200, { "set-cookie": ["a=1; Path=/", "b=2; Path=/; HttpOnly"], "content-type": "text/plain" })
      return res.end("two cookies")
    }
    res.writeHead(status, { "content-type": "text/plain" })
    res.on("close", () => stats.closed++)
    const pump = () => {
      while (!res.destroyed && stats.written < 512 * 1024 * 1024) {
        stats.written += CHUNK.length
        if (!res.write(CHUNK)) return void res.once("drain", pump)
      }
      res.end()
    }
    pump()
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    stats,
    close: () => new Promise<void>((resolve) => (server.closeAllConnections(), server.close(() => resolve())))
  }
}

const waitFor = async (check: () => boolean, ms = 3000) => {
  for (const deadline = Date.now() + ms; !check();) {
    if (Date.now() > deadline) throw new Error("condition not met in time")
    await new Promise((r) => setTimeout(r, 10))
  }
}

const forwardProvider: Provider.Provider = {
  name: "answers_test",
  routes: ["first/<region>/"],
  match: Provider.pathMatcher([["forward", /^first\/([a-z]+)\/$/]]),
  route: (_request, match) => {
    const regions = [match.params[0]! as RegionName]
    return Effect.succeed({
      provider: "answers_test",
      decision: new Forward({ regions, mode: "first" }),
      reason: "forward first",
      integration: null,
      organizations: [],
      regions
    })
  }
}

const truncated = (text: string, kind: string): number => {
  const m = new RegExp(`^cellgate_truncated_total\\{kind="${kind}"\\} (\\d+)`, "m").exec(text)
  return m === null ? 0 : Number(m[1])
}

describe("relayed answers (synchronous Forward) through the gateway", () => {
  let region: Awaited<ReturnType<typeof startRegion>>
  let server: EmbeddedServer

  beforeAll(async () => {
    region = await startRegion(200)
    server = await makeServer({
      store: { kind: "memory", ephemeral: true },
      delivery: { requestTimeoutMs: 5_000, maxAnswerBytes: CAP },
      directory: { regions: [{ name: "us", url: region.url }] }
    }, { port: 0, worker: false, providers: Providers.layer({}, [forwardProvider]), log: () => {} })
  })

  afterAll(async () => {
    await server?.close()
    await region?.close()
  })

  it("two Set-Cookie headers of the region reach the sender as two headers", async () => {
    const r = await call(server.url, "/extensions/answers-test/first/us/?cookies", { body: "{}" })
    assert.strictEqual(r.status, 200)
    assert.strictEqual(r.text, "two cookies")
    assert.deepStrictEqual(r.headers["set-cookie"], ["a=1; Path=/", "b=2; Path=/; HttpOnly"])
    assert.strictEqual(r.headers["x-cellgate-region"], "us")
  })

  it("an endless answer → 502 answer_too_large at once; the region's connection is closed, the rest never read", async () => {
    const before = truncated((await call(server.url, "/metrics")).text, "relayed_answer")
    const started = Date.now()
    const r = await call(server.url, "/extensions/answers-test/first/us/", { body: "{}" })
    assert.strictEqual(r.status, 502)
    assert.deepInclude(JSON.parse(r.text), { error: "answer_too_large" })
    assert.strictEqual(r.headers["x-cellgate-region"], "us")
    assert.isBelow(Date.now() - started, 4_000) // not the request timeout
    await waitFor(() => region.stats.closed === 1)
    // socket buffers hold a few MB at most: the gateway stopped reading at the cap
    assert.isBelow(region.stats.written, 32 * 1024 * 1024)
    const after = truncated((await call(server.url, "/metrics")).text, "relayed_answer")
    assert.strictEqual(after - before, 1)
  })
})

describe("HttpRegionClient", () => {
  it.scoped("keeps repeated headers apart and cuts an answer at maxAnswerBytes (truncated, the start kept)", () =>
    Effect.gen(function*() {
      const region = yield* Effect.acquireRelease(
        Effect.promise(() => startRegion(200)),
        (r) => Effect.promise(r.close)
      )
      const client = yield* RegionClient.RegionClient
      const send = (path: string) =>
        client.send(makeRegion("us", region.url), { method: "POST", path, headers: {}, body: new Uint8Array([1]) }, {
          timeoutMs: 5_000,
          maxAnswerBytes: CAP
        })
      const cookies = yield* send("/cookies")
      assert.deepStrictEqual(cookies.headers["set-cookie"], ["a=1; Path=/", "b=2; Path=/; HttpOnly"])
      assert.strictEqual(cookies.headers["content-type"], "text/plain")
      assert.notStrictEqual(cookies.truncated, true)
      const endless = yield* send("/endless")
      assert.strictEqual(endless.status, 200)
      assert.isTrue(endless.truncated)
      assert.strictEqual(endless.body.length, CAP)
      assert.isTrue(endless.body.every((b) => b === 0x78))
    }).pipe(Effect.provide(HttpRegionClient.layer)))
})

describe("deliveries", () => {
  it.scoped("an endless 404 answer: dead-lettered with its start, counted as stored_answer, the rest never read", () =>
    Effect.gen(function*() {
      const region = yield* Effect.acquireRelease(
        Effect.promise(() => startRegion(404)),
        (r) => Effect.promise(r.close)
      )
      const counted = Metric.value(Metrics.truncatedTotal("stored_answer"))
      const before = (yield* counted).count
      yield* Effect.gen(function*() {
        const outbox = yield* Outbox.Outbox
        yield* enqueueNow([newPayload("jira_server:us:1")])
        const [r] = yield* drainDue("w")
        assert.strictEqual(r!.deadLettered, 1)
        const [dead] = yield* outbox.deadLetters
        assert.strictEqual(dead!.lastStatus, 404)
        assert.strictEqual(dead!.reason, "permanent_failure")
        assert.isTrue(dead!.lastBody!.startsWith("xxxxxxxx"))
        assert.isAtMost(dead!.lastBody!.length, 2049)
      }).pipe(
        DeliverySettings.withSettings({ maxAnswerBytes: CAP, requestTimeoutMs: 5_000 }),
        Effect.provide(
          Layer.mergeAll(
            Memory.outboxLayer,
            Memory.directoryLayer(new Directory({ regions: [makeRegion("us", region.url)] })),
            HttpRegionClient.layer
          )
        )
      )
      yield* Effect.promise(() => waitFor(() => region.stats.closed === 1))
      assert.isBelow(region.stats.written, 32 * 1024 * 1024)
      assert.strictEqual((yield* counted).count - before, 1)
    }))
})
