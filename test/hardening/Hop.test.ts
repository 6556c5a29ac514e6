// Issue #10, items 9 and 12, on the hop to a region: a request is never re-sent with the same attempt number (a reset
// on a reused keep-alive socket is a failed attempt; the re-send is the next attempt, with its own number), and at
// most 100 sender headers go on the hop, cellgate's own `x-cellgate-*` (and `host`) first, the rest dropped and
// counted in `cellgate_truncated_total{kind="hop_headers"}`.
import { HttpRegionClient, Memory } from "@cellgate/adapters"
import type { RegionName } from "@cellgate/core"
import {
  Directory,
  Forward,
  MAX_SENDER_HEADERS,
  Outbox,
  outgoingHeaders,
  Provider,
  Providers,
  verifyForwarded
} from "@cellgate/core"
import type { EmbeddedServer } from "@cellgate/http"
import { makeServer } from "@cellgate/http"
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { Effect, Layer, Random, TestClock } from "effect"
import * as Http from "node:http"
import type { AddressInfo } from "node:net"
import type * as Net from "node:net"
import { drainDue, enqueueNow, makeRegion, newPayload } from "../delivery/support.js"
import { call } from "../support/Http.js"

const SECRET = "whsec_" + Buffer.from("a 32 byte secret for the region!").toString("base64")

describe("a reset on a reused keep-alive socket", () => {
  it.scoped("is a failed attempt: the request is sent again only as the next attempt, with its own number", () =>
    Effect.gen(function*() {
      const seen: Array<{ id: string; attempt: string; socket: number }> = []
      const sockets = new Map<Net.Socket, { id: number; requests: number }>()
      const server = yield* Effect.acquireRelease(
        Effect.promise(() =>
          new Promise<Http.Server>((resolve) => {
            const s = Http.createServer((req, res) => {
              let info = sockets.get(req.socket)
              if (info === undefined) sockets.set(req.socket, info = { id: sockets.size + 1, requests: 0 })
              info.requests++
              seen.push({
                id: String(req.headers["x-cellgate-delivery-id"]),
                attempt: String(req.headers["x-cellgate-attempt"]),
                socket: info.id
              })
              // the first connection dies under its second request, after the region read its head
              if (info.id === 1 && info.requests === 2) return void req.socket.destroy()
              req.resume()
              req.on("end", () => res.end("ok"))
            })
            s.listen(0, "127.0.0.1", () => resolve(s))
          })
        ),
        (s) => Effect.promise(() => new Promise<void>((r) => (s.closeAllConnections(), s.close(() => r()))))
      )
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
      yield* Effect.gen(function*() {
        const first = newPayload("jira_server:us:1")
        const second = newPayload("jira_server:us:1")
        yield* enqueueNow([first, second])
        const [r1] = yield* drainDue("w")
        assert.strictEqual(r1!.delivered, 1)
        assert.strictEqual(r1!.retried, 1)
        const [waiting] = yield* Effect.flatMap(Outbox.Outbox, (o) => o.head("jira_server:us:1", 1))
        assert.strictEqual(waiting!.deliveryId, second.deliveryId)
        assert.strictEqual(waiting!.attempts, 1)
        assert.match(waiting!.lastError!, /ECONNRESET|socket hang up/)
        yield* TestClock.adjust(60 * 60_000)
        const [r2] = yield* drainDue("w")
        assert.strictEqual(r2!.delivered, 1)
        // the second payload reached the region twice, as attempt 1 then attempt 2: never the same number twice
        assert.deepStrictEqual(seen.filter((s) => s.id === second.deliveryId).map((s) => s.attempt), ["1", "2"])
        assert.strictEqual(new Set(seen.map((s) => `${s.id}#${s.attempt}`)).size, seen.length)
        assert.deepStrictEqual(seen.map((s) => s.socket).slice(0, 2), [1, 1]) // the reset was on a reused socket
      }).pipe(
        Effect.withRandom(Random.fixed([0.5])),
        Effect.provide(
          Layer.mergeAll(
            Memory.outboxLayer,
            Memory.directoryLayer(new Directory({ regions: [makeRegion("us", url)] })),
            HttpRegionClient.layer
          )
        )
      )
    }))
})

const forwardProvider: Provider.Provider = {
  name: "hop_test",
  routes: ["first/<region>/"],
  match: Provider.pathMatcher([["forward", /^first\/([a-z]+)\/$/]]),
  route: (_request, match) => {
    const regions = [match.params[0]! as RegionName]
    return Effect.succeed({
      provider: "hop_test",
      decision: new Forward({ regions, mode: "first" }),
      reason: "forward first",
      integration: null,
      organizations: [],
      regions
    })
  }
}

describe("the sender's headers on the hop", () => {
  /** A region with a header limit of its own (node:http's `maxHeadersCount`): what is past it is not seen. */
  let region: Http.Server
  let regionUrl: string
  const received: Array<{ headers: Http.IncomingHttpHeaders; body: Buffer }> = []
  let server: EmbeddedServer

  beforeAll(async () => {
    region = Http.createServer((req, res) => {
      const chunks: Array<Buffer> = []
      req.on("data", (c: Buffer) => chunks.push(c))
      req.on("end", () => {
        received.push({ headers: req.headers, body: Buffer.concat(chunks) })
        res.end(req.headers["host"] === undefined ? "no host" : "ok")
      })
    })
    region.maxHeadersCount = 120
    await new Promise<void>((resolve) => region.listen(0, "127.0.0.1", resolve))
    regionUrl = `http://127.0.0.1:${(region.address() as AddressInfo).port}`
    server = await makeServer({
      store: { kind: "memory", ephemeral: true },
      directory: { regions: [{ name: "us", url: regionUrl, secret: SECRET }] }
    }, { port: 0, worker: false, providers: Providers.layer({}, [forwardProvider]), log: () => {} })
  })

  afterAll(async () => {
    await server?.close()
    region?.closeAllConnections()
    await new Promise<void>((resolve) => region === undefined ? resolve() : region.close(() => resolve()))
  })

  const hopHeaders = async () => {
    const m = /^cellgate_truncated_total\{kind="hop_headers"\} (\d+)/m.exec((await call(server.url, "/metrics")).text)
    return m === null ? 0 : Number(m[1])
  }

  // ~1 000 sender headers (990: node:http itself refuses a request with more than 1 000 header lines, 400)
  it("990 sender headers: the region gets host, every x-cellgate-* and 100 of them; 890 counted", async () => {
    const headers: Record<string, string> = {}
    for (let i = 0; i < 990; i++) headers[`h-${i}`] = "v"
    const before = await hopHeaders()
    const body = "{\"big\":true}"
    const r = await call(server.url, "/extensions/hop-test/first/us/", { body, headers })
    assert.strictEqual(r.status, 200, r.text)
    assert.strictEqual(r.text, "ok")
    const got = received.at(-1)!
    assert.strictEqual(got.headers["host"], new URL(regionUrl).host)
    for (const name of ["delivery-id", "attempt", "timestamp", "signature"]) {
      assert.isString(got.headers[`x-cellgate-${name}`], name)
    }
    const sender = Object.keys(got.headers).filter((k) => k.startsWith("h-"))
    assert.strictEqual(sender.length, MAX_SENDER_HEADERS)
    assert.deepStrictEqual(sender.slice(0, 3), ["h-0", "h-1", "h-2"]) // the first ones, in order
    const verified = await verifyForwarded({ headers: got.headers, body: got.body }, SECRET)
    assert.isTrue(verified.ok)
    assert.strictEqual((await hopHeaders()) - before, 890)
  })

  it.effect("outgoingHeaders: cellgate's own first, then at most 100 sender headers in their order", () =>
    Effect.gen(function*() {
      const original: Record<string, string> = { host: "x", connection: "h-3", "x-cellgate-attempt": "99" }
      for (let i = 0; i < 150; i++) original[`h-${i}`] = String(i)
      const out = yield* outgoingHeaders(makeRegion("us", "http://us.example", SECRET), original, new Uint8Array(), {
        deliveryId: "d",
        attempt: 2,
        mailbox: "m"
      }, 0)
      const keys = Object.keys(out)
      assert.deepStrictEqual(keys.slice(0, 5), [
        "x-cellgate-delivery-id",
        "x-cellgate-attempt",
        "x-cellgate-mailbox",
        "x-cellgate-timestamp",
        "x-cellgate-signature"
      ])
      assert.strictEqual(out["x-cellgate-attempt"], "2")
      assert.strictEqual(keys.length - 5, MAX_SENDER_HEADERS)
      assert.isUndefined(out["h-3"]) // named in Connection
      assert.strictEqual(keys.at(-1), "h-100")
    }))
})
