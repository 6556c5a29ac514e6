// docs/interfaces.md (HTTP answers): a request whose target is not an origin-form path (`OPTIONS *`, the
// absolute form `POST http://host/… HTTP/1.1`) is answered 400 `bad_request` at the server entry — before routing,
// so neither a provider nor the control proxy ever sees it (the control proxy used to throw on it: 500).
import type { EmbeddedServer } from "@cellgate/http"
import { makeServer } from "@cellgate/http"
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { FastCheck as fc } from "effect"
import type { Stub } from "../support/Http.js"
import { startStub } from "../support/Http.js"
import { exchange } from "./RawHttp.js"

let control: Stub
let region: Stub
let server: EmbeddedServer
/** Without a control upstream: the control side answers 404, so only the entry check can answer 400. */
let bare: EmbeddedServer

beforeAll(async () => {
  control = await startStub(() => ({ status: 200, body: "control" }))
  region = await startStub(() => ({ status: 200 }))
  server = await makeServer({
    store: { kind: "memory", ephemeral: true },
    control: { upstream: control.url },
    directory: {
      regions: [{ name: "us", url: region.url }],
      organizations: [{ id: 1, slug: "acme", region: "us" }],
      integrations: [{ id: 10, provider: "github", externalId: "4242" }],
      organizationIntegrations: [{ organizationId: 1, integrationId: 10 }]
    }
  }, { port: 0, worker: false, log: () => {} })
  bare = await makeServer({ store: { kind: "memory", ephemeral: true } }, { port: 0, worker: false, log: () => {} })
})

afterAll(async () => {
  await server?.close()
  await bare?.close()
  await control?.close()
  await region?.close()
})

const request = (method: string, target: string, body = "") =>
  `${method} ${target} HTTP/1.1\r\nHost: gateway.test\r\ncontent-type: application/json\r\n` +
  `content-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`

const assertBadRequest = async (to: EmbeddedServer, method: string, target: string, body = "") => {
  const answer = await exchange(to.url, request(method, target, body))
  assert.deepStrictEqual(answer.statuses, [400], `${method} ${target}: ${answer.raw}`)
  const json = JSON.parse(answer.body)
  assert.strictEqual(json.error, "bad_request")
  assert.isString(json.message)
  assert.notInclude(answer.raw, "    at ") // no stack trace
}

const paths = [
  "/",
  "/healthz",
  "/metrics",
  "/extensions/github/webhook/",
  "/extensions/jira-server/issue-updated/x/",
  "/plugins/anything",
  "/api/0/organizations/"
]

describe("request targets that are not paths → 400 bad_request", () => {
  it("OPTIONS * (and * with other methods)", async () => {
    for (const to of [server, bare]) {
      for (const method of ["OPTIONS", "GET", "POST", "DELETE"]) await assertBadRequest(to, method, "*")
      const head = await exchange(to.url, request("HEAD", "*"))
      assert.deepStrictEqual(head.statuses, [400], head.raw)
    }
  })

  it("absolute-form targets, to every routed prefix, control and the built-in endpoints", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom("GET", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"),
        fc.constantFrom("http", "https", "HTTP", "ftp"),
        fc.constantFrom("evil", "127.0.0.1", "gateway.test:8080", "[::1]:1", "a.b.c"),
        fc.constantFrom(...paths),
        fc.constantFrom("", "?x=1", "?jwt=a.b.c"),
        fc.boolean(),
        async (method, scheme, host, path, query, withControl) => {
          const target = `${scheme}://${host}${path}${query}`
          await assertBadRequest(withControl ? server : bare, method, target, method === "GET" ? "" : "{}")
        }
      ),
      { numRuns: 60 }
    )
  })

  it("nothing reached the control upstream or a region, and the gateway still answers paths", async () => {
    assert.strictEqual(control.received.length, 0)
    assert.strictEqual(region.received.length, 0)
    const health = await exchange(server.url, request("GET", "/healthz"), { idleMs: 300 })
    assert.deepStrictEqual(health.statuses, [200])
    // a path beginning with two slashes is still a path (origin form): routed as usual, to control
    const doubled = await exchange(server.url, request("GET", "//x"), { idleMs: 300 })
    assert.deepStrictEqual(doubled.statuses, [200])
    assert.strictEqual(control.received.length, 1)
    assert.deepStrictEqual((await exchange(bare.url, request("GET", "//x"), { idleMs: 300 })).statuses, [404])
  })
})
