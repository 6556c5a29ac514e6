// docs/routing.md#synchronous-proxy through real HTTP: a test provider answers Forward (first | all) to the regions named in its path;
// region stubs answer, hang past the timeout, or refuse connections.
import type { RegionName } from "@cellgate/core"
import { Forward, Provider, Providers } from "@cellgate/core"
import type { EmbeddedServer } from "@cellgate/http"
import { makeServer } from "@cellgate/http"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import type { Stub } from "../support/Http.js"
import { call, closedPort, startStub } from "../support/Http.js"

const testProvider: Provider.Provider = {
  name: "fwd_test",
  routes: ["first/<regions>/", "all/<regions>/"],
  match: Provider.pathMatcher([["forward", /^(first|all)\/([a-z,]+)\/$/]]),
  route: (_request, match) => {
    const regions = match.params[1]!.split(",").sort() as Array<RegionName>
    const mode = match.params[0] as "first" | "all"
    return Effect.succeed({
      provider: "fwd_test",
      decision: new Forward({ regions, mode }),
      reason: `forward ${mode}`,
      integration: null,
      organizations: [],
      regions
    })
  }
}

let ok: Stub // "c": 201 with a body and headers
let slow: Stub // "a": answers after the timeout
let failing: Stub // "e": 500
let notFound: Stub // "f": 404
let server: EmbeddedServer

beforeAll(async () => {
  ok = await startStub(() => ({
    status: 201,
    headers: { "content-type": "text/plain", "x-region-thing": "yes", connection: "close" },
    body: "created in c"
  }))
  slow = await startStub(() => ({ status: 200, body: "too late", delayMs: 2_000 }))
  failing = await startStub(() => ({ status: 500, body: "boom" }))
  notFound = await startStub(() => ({ status: 404, body: "nope" }))
  const refused = await closedPort()
  server = await makeServer({
    store: { kind: "memory", ephemeral: true },
    delivery: { requestTimeoutMs: 300 },
    directory: {
      regions: [
        { name: "a", url: slow.url },
        { name: "b", url: `http://127.0.0.1:${refused}` },
        { name: "c", url: ok.url },
        { name: "e", url: failing.url },
        { name: "f", url: notFound.url }
      ]
    }
  }, { port: 0, worker: false, providers: Providers.layer({}, [testProvider]), log: () => {} })
})

afterAll(async () => {
  await server?.close()
  for (const s of [ok, slow, failing, notFound]) await s?.close()
})

const post = (p: string) => call(server.url, `/extensions/fwd-test/${p}?q=1`, { body: "{\"x\":1}" })

describe("Forward", () => {
  it("first: relays the first region's status, body and headers, with x-cellgate-region", async () => {
    const reply = await post("first/c,e/")
    expect(reply.status).toBe(201)
    expect(reply.text).toBe("created in c")
    expect(reply.headers["x-region-thing"]).toBe("yes")
    expect(reply.headers["x-cellgate-region"]).toBe("c")
    expect(reply.headers["content-type"]).toBe("text/plain")
    const got = ok.received.at(-1)!
    expect(got.path).toBe("/extensions/fwd-test/first/c,e/?q=1")
    expect(got.body.toString()).toBe("{\"x\":1}")
    expect(got.headers["x-cellgate-attempt"]).toBe("1")
    expect(got.headers["x-cellgate-delivery-id"]).toMatch(/^[0-9a-f-]{36}$/)
  })

  it("first: a region that does not answer in time → 504", async () => {
    const reply = await post("first/a,c/")
    expect(reply.status).toBe(504)
    expect(JSON.parse(reply.text)).toMatchObject({ error: "region_timeout" })
  })

  it("first: a region that refuses the connection → 502", async () => {
    const reply = await post("first/b,c/")
    expect(reply.status).toBe(502)
    expect(JSON.parse(reply.text)).toMatchObject({ error: "region_unreachable" })
  })

  it("first: a region's error answer is relayed as is", async () => {
    const reply = await post("first/e/")
    expect(reply.status).toBe(500)
    expect(reply.text).toBe("boom")
    expect(reply.headers["x-cellgate-region"]).toBe("e")
  })

  it("all: one slow, one failing, one ok → the 2xx", async () => {
    const reply = await post("all/a,b,c/")
    expect(reply.status).toBe(201)
    expect(reply.headers["x-cellgate-region"]).toBe("c")
  })

  it("all: the first 2xx in region-name order wins over earlier error answers", async () => {
    const reply = await post("all/c,e,f/")
    expect(reply.status).toBe(201)
    expect(reply.headers["x-cellgate-region"]).toBe("c")
  })

  it("all: no 2xx → the first answer in region-name order", async () => {
    const reply = await post("all/b,e,f/")
    expect(reply.status).toBe(500)
    expect(reply.headers["x-cellgate-region"]).toBe("e")
  })

  it("all: every region failing (timeout and refused) → 502", async () => {
    const reply = await post("all/a,b/")
    expect(reply.status).toBe(502)
    expect(JSON.parse(reply.text)).toMatchObject({ error: "region_unreachable" })
  })
})
