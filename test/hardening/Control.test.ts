// Issue #10, item 3: the control proxy keeps every request under its upstream's base path (dot segments, plain or
// percent-encoded, never climb out), answers 400 `bad_request` for a target that is not an origin-form path (it
// never throws), drops the headers named in `Connection`, and is built on the region client's HTTP client and the one
// hop-by-hop list (item 10: repeated answer headers stay separate; item 8: an answer over the cap is 502).
import * as HttpExchange from "@cellgate/adapters/HttpExchange"
import { GatewaySettings, relayableHeaders, withoutHopByHop } from "@cellgate/core"
import type { EmbeddedServer } from "@cellgate/http"
import { Control, makeServer } from "@cellgate/http"
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { Effect, FastCheck as fc } from "effect"
import * as Http from "node:http"
import type { AddressInfo } from "node:net"
import type { Stub } from "../support/Http.js"
import { call, startStub } from "../support/Http.js"

const BASE = "/app/v1"

let upstream: Stub
let server: EmbeddedServer

beforeAll(async () => {
  upstream = await startStub((r) =>
    r.path.startsWith(`${BASE}/cookies`)
      ? {
        status: 200,
        headers: { "set-cookie": ["a=1; Path=/", "b=2; Path=/"], trailer: "x-t", "content-type": "text/plain" } as any,
        body: "two cookies"
      }
      : { status: 200, body: "control" }
  )
  server = await makeServer({
    store: { kind: "memory", ephemeral: true },
    control: { upstream: `${upstream.url}${BASE}/` }
  }, { port: 0, worker: false, log: () => {} })
})

afterAll(async () => {
  await server?.close()
  await upstream?.close()
})

const segment = fc.oneof(
  fc.constantFrom(
    "..",
    ".",
    "%2e%2e",
    "%2E.",
    ".%2e",
    "%2e",
    "%2E%2E",
    "",
    "%2f",
    "..%2f",
    "%2e%2e%2f",
    "%5c",
    "..%5C"
  ),
  fc.constantFrom("a", "b", "etc", "passwd", "x.y", "...", "%41", "%zz", "\\", "..\\", "~", ";", "@", ":"),
  fc.stringMatching(/^[A-Za-z0-9._~%-]{0,6}$/)
)
const generatedPath = fc.tuple(
  fc.array(segment, { maxLength: 10 }),
  fc.boolean(),
  fc.option(fc.stringMatching(/^[a-z=&.%/]{0,8}$/))
)
  .map(([segments, slash, query]) =>
    "/" + segments.join("/") + (slash ? "/" : "") + (query === null ? "" : `?${query}`)
  )

describe("HttpExchange.upstreamPath (the one join of base path and request target)", () => {
  it.prop(
    "never climbs above the base path, whatever the path",
    [generatedPath, fc.constantFrom("", "/base", "/a/b")],
    ([
      target,
      base
    ]) => {
      const joined = HttpExchange.upstreamPath(base, target)
      if (joined === undefined) return true
      assert.isTrue(joined.startsWith(base + "/"), `${target} → ${joined}`)
      const pathname = joined.split("?")[0]!
      // no dot segment left, even once %2e and encoded slashes are decoded
      const decoded = pathname.replace(/%2f|%5c/gi, "/").replace(/%2e/gi, ".").replace(/\\/g, "/")
      assert.notMatch(decoded, /(^|\/)\.{1,2}(\/|$)/, `${target} → ${joined}`)
      // the query goes exactly as given
      const q = target.indexOf("?")
      assert.strictEqual(joined.slice(pathname.length), q === -1 ? "" : target.slice(q))
      return true
    }
  )

  it("resolves plain and encoded dot segments under the base; leaves normal paths byte for byte", () => {
    assert.strictEqual(HttpExchange.upstreamPath("/base", "/a/../../../etc/passwd"), "/base/etc/passwd")
    assert.strictEqual(HttpExchange.upstreamPath("/base", "/a/%2e%2e/%2E%2e/%2e./etc"), "/base/etc")
    assert.strictEqual(HttpExchange.upstreamPath("/base", "//evil.example/x"), "/base//evil.example/x")
    assert.strictEqual(HttpExchange.upstreamPath("", "/x/?a=%20&b=..%2f"), "/x/?a=%20&b=..%2f")
    assert.strictEqual(
      HttpExchange.upstreamPath("/base", "/extensions/jira-server/issue-updated/eyJ.a-b_c.d~/?q=1"),
      "/base/extensions/jira-server/issue-updated/eyJ.a-b_c.d~/?q=1"
    )
    assert.isUndefined(HttpExchange.upstreamPath("/base", "/a/..%2f..%2fetc"))
    for (const target of ["*", "http://evil/x", "https://evil:1/x", "evil/x", "", "/a#frag"]) {
      assert.isUndefined(HttpExchange.upstreamPath("/base", target), target)
    }
  })
})

describe("Control.proxy", () => {
  const handle = (path: string, method = "POST") =>
    Control.proxy(`${upstream.url}${BASE}`).handle({
      method,
      path,
      headers: { "content-type": "application/json" },
      body: new TextEncoder().encode("{}"),
      receivedAt: 0
    })

  it.effect("a target that is not an origin-form path → 400 bad_request, nothing sent (it used to throw: 500)", () =>
    Effect.gen(function*() {
      const before = upstream.received.length
      for (const [method, target] of [["OPTIONS", "*"], ["POST", "http://evil/x"], ["GET", "evil"]] as const) {
        const answer = yield* handle(target, method)
        assert.strictEqual(answer.status, 400, target)
        assert.strictEqual(JSON.parse(answer.body as string).error, "bad_request")
      }
      assert.strictEqual(upstream.received.length, before)
    }))

  it.scoped("an answer over maxAnswerBytes → 502 answer_too_large", () =>
    Effect.gen(function*() {
      const big = yield* Effect.acquireRelease(
        Effect.promise(() =>
          new Promise<Http.Server>((resolve) => {
            const s = Http.createServer((_req, res) => res.end(Buffer.alloc(5_000_000, 120)))
            s.listen(0, "127.0.0.1", () => resolve(s))
          })
        ),
        (s) => Effect.promise(() => new Promise<void>((r) => (s.closeAllConnections(), s.close(() => r()))))
      )
      const url = `http://127.0.0.1:${(big.address() as AddressInfo).port}`
      const answer = yield* Control.proxy(url).handle({
        method: "GET",
        path: "/",
        headers: {},
        body: new Uint8Array(),
        receivedAt: 0
      }).pipe(
        Effect.provideService(GatewaySettings.GatewaySettings, { requestTimeoutMs: 2000, maxAnswerBytes: 64 * 1024 })
      )
      assert.strictEqual(answer.status, 502)
      assert.strictEqual(JSON.parse(answer.body as string).error, "answer_too_large")
    }))
})

describe("the control proxy through the gateway", () => {
  it("dot segments (plain or %2e) never climb out of the upstream's base path", async () => {
    for (const target of ["/x/../../../secret", "/x/%2e%2e/%2e%2e/%2E%2E/secret", "/x/.%2e/.%2E/secret?q=1"]) {
      const before = upstream.received.length
      const r = await call(server.url, target)
      assert.strictEqual(r.status, 200, target)
      const got = upstream.received.slice(before)
      assert.strictEqual(got.length, 1)
      assert.isTrue(got[0]!.path.startsWith(`${BASE}/`), `${target} → ${got[0]!.path}`)
      assert.strictEqual(got[0]!.path.split("?")[0], `${BASE}/secret`)
    }
  })

  it("headers named in Connection, and the hop-by-hop list, do not reach the upstream", async () => {
    const before = upstream.received.length
    await call(server.url, "/settings", {
      headers: {
        connection: "close, x-private-hop",
        "x-private-hop": "for the gateway only",
        "proxy-authorization": "Basic eA==",
        "proxy-connection": "keep-alive",
        "x-end-to-end": "yes"
      }
    })
    const got = upstream.received[before]!
    assert.isUndefined(got.headers["x-private-hop"])
    assert.isUndefined(got.headers["proxy-authorization"])
    assert.isUndefined(got.headers["proxy-connection"])
    assert.strictEqual(got.headers["x-end-to-end"], "yes")
    assert.strictEqual(got.headers["host"], new URL(upstream.url).host)
  })

  it("the upstream's repeated Set-Cookie headers arrive as separate headers; its trailer header is not relayed", async () => {
    const r = await call(server.url, "/cookies")
    assert.strictEqual(r.text, "two cookies")
    assert.deepStrictEqual(r.headers["set-cookie"], ["a=1; Path=/", "b=2; Path=/"])
    assert.isUndefined(r.headers["trailer"])
  })
})

describe("one hop-by-hop list", () => {
  it("the control proxy's and the relay's filters are Forwarding's: trailer, te, upgrade … and Connection-named", () => {
    const headers = {
      connection: "x-a",
      "x-a": "1",
      trailer: "x-t",
      trailers: "x",
      te: "trailers",
      upgrade: "h2c",
      "keep-alive": "timeout=5",
      "proxy-connection": "keep-alive",
      "proxy-authenticate": "x",
      "proxy-authorization": "y",
      "transfer-encoding": "chunked",
      host: "h",
      "set-cookie": ["a=1", "b=2"],
      "content-type": "text/plain"
    }
    assert.deepStrictEqual(withoutHopByHop(headers), { "set-cookie": ["a=1", "b=2"], "content-type": "text/plain" })
    assert.deepStrictEqual(relayableHeaders({ ...headers, "content-length": "3" }), {
      "set-cookie": ["a=1", "b=2"],
      "content-type": "text/plain"
    })
  })
})
